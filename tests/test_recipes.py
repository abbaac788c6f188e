"""The reference recipes in ``configs/`` validate as ``--config`` for every modality and their
per-parameter learning-rate patterns name real parameters; a run's own ``config.yaml`` is
accepted back as ``--config`` by a new run."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from helpers.cli import run_flatkd

from flatkd.models import build_model
from flatkd.modalities import MODALITIES
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import resolve
from flatkd.train import TrainConfig

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes_for_ucf101_and_hmdb51() -> None:
    assert [p.name for p in CONFIGS] == ["hmdb51.yaml", "ucf101.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_recipe_validates_for_every_modality(path: Path) -> None:
    lrs = {}
    for modality in MODALITIES:
        config = resolve(TrainConfig, ("train", modality), config_path=path)
        assert config.preset == "paper" and config.input_size == 224 and config.num_segments == 3
        assert config.backbone.schedule.name == "step" and config.ics.epochs == 300
        lrs[modality] = (config.backbone.optim.lr, config.ics.optim.lr)
        names = [name for name, _ in build_model("paper", modality, 101, config.exits).named_parameters()]
        for pattern in config.backbone.optim.lr_mult:
            assert any(fnmatch.fnmatchcase(n, pattern) for n in names), (modality, pattern)
    assert lrs == {"iframe": (0.0003, 0.0003), "mv": (0.01, 0.01), "residual": (0.005, 0.005)}


def test_a_runs_config_yaml_is_accepted_back_as_config(dataset: Path, tmp_path: Path) -> None:
    fast = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4",
            "--epochs", "1", "--ic-epochs", "1"]  # fmt: skip
    first = tmp_path / "first"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(first), *fast)
    assert result.exit_code == 0, result.output
    second = tmp_path / "second"
    again = ["train", "--data", str(dataset), "--modality", "mv", "--run", str(second), "--config"]
    result = run_flatkd(*again, str(first / "config.yaml"), "--set", "seed=3")
    assert result.exit_code == 0, result.output
    recorded = {run: RunDir(run).read_config()["train"]["mv"] for run in (first, second)}
    assert recorded[second] == {**recorded[first], "seed": 3}
