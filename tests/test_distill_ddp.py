"""``flatkd distill`` under torchrun: generative KD on 2 CPU processes (gloo) trains like one.

Generative KD goes through the one training loop (:func:`flatkd.train.loop.fit`), so under torchrun
it shards every global batch over the ranks, averages the gradients and synchronises BatchNorm like
``flatkd train`` (``tests/test_training_ddp.py`` explains what "equal" can mean: the same
arithmetic up to the order of floating-point sums). One thing differs on purpose: the CVAE's
reparametrisation noise is drawn per process, so the losses differ slightly; the weights still agree
to ~1e-5, far below how far training moves them. SGD, for the reason given there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers.cli import run_flatkd, run_flatkd_processes

from flatkd.fileio import load_tensors
from flatkd.runs.rundir import RunDir

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "8"]
SGD = {"name": "sgd", "lr": 0.02}
SETTINGS = {
    "ics": {"epochs": 1, "optim": SGD},
    # the per-process CVAE noise enters through the reconstruction term, so its weight sets how
    # far the two runs drift: 0.05 ramped over both epochs is 0.025 in the second
    "genkd": {"epochs": 2, "teacher_epochs": 1, "cvae_optim": SGD, "network_optim": SGD,
              "loss": {"recon_weight": 0.05, "ramp_fraction": 1.0}},
}


def _distill(run: Path, settings: Path, processes: int) -> None:
    run_flatkd_processes(processes, "distill", "--run", str(run), "--method", "genkd", "--modality", "mv", "--config", str(settings))


def _max_difference(a: Path, b: Path, shared_only: bool = False) -> float:
    x, y = load_tensors(a), load_tensors(b)
    keys = x.keys() & y.keys() if shared_only else x.keys()
    assert shared_only or x.keys() == y.keys()
    return max(float((x[k].double() - y[k].double()).abs().max()) for k in keys if x[k].is_floating_point())


@pytest.mark.slow
def test_genkd_under_torchrun_trains_like_one_process(dataset: Path, tmp_path: Path) -> None:
    trained = tmp_path / "trained"
    modalities = ["--modality", "iframe", "--modality", "mv"]
    result = run_flatkd("train", "--data", str(dataset), *modalities, "--run", str(trained), *TRAIN, "--epochs", "1", "--ic-epochs", "1")
    assert result.exit_code == 0, result.output
    settings = tmp_path / "genkd.yaml"
    settings.write_text(yaml.safe_dump(SETTINGS))
    runs = {n: RunDir(shutil.copytree(trained, tmp_path / f"p{n}")) for n in (1, 2)}
    for processes, run in runs.items():
        _distill(run.path, settings, processes)

    one, two = runs[1], runs[2]
    for stage, modality in (("genkd-teacher", "iframe"), ("genkd", "mv"), ("ic-genkd", "mv")):
        assert _max_difference(one.checkpoint_path(stage, modality), two.checkpoint_path(stage, modality)) < 1e-4, stage
    moved = _max_difference(one.checkpoint_path("backbone", "mv"), one.checkpoint_path("genkd", "mv"), shared_only=True)
    assert moved > 1e-2  # the agreement is not that of two runs that did not train
    one_metrics, two_metrics = one.read_metrics(), two.read_metrics()
    genkd = [(one_metrics["stage"] == s).sum() for s in ("genkd-teacher", "genkd", "ic-genkd")]
    assert genkd == [1, 2, 1] and [(two_metrics["stage"] == s).sum() for s in ("genkd-teacher", "genkd", "ic-genkd")] == genkd
    val = ["val_acc"]
    assert one_metrics[one_metrics["stage"] == "genkd"][val].equals(two_metrics[two_metrics["stage"] == "genkd"][val])
