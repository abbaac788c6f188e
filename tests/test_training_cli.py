"""``flatkd train`` and ``flatkd evaluate`` on a tiny real synthetic set (PyAV-encoded, cached),
including the one-line errors for a corrupted checkpoint and a config with a wrong key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers.cli import assert_one_line_error, run_flatkd

from flatkd.data.dataset_splits import open_dataset
from flatkd.data.synth.design import class_table
from flatkd.runs.data_source import resolve_data_source
from flatkd.runs.rundir import RunDir

FAST = [
    "--set",
    "input_size=32",
    "--set",
    "num_segments=2",
    "--set",
    "workers=0",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--ic-epochs",
    "1",
]


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "r1"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *FAST)
    assert result.exit_code == 0, result.output
    return run


def test_train_records_everything_and_evaluate_reproduces_the_logits(trained: Path, tmp_path: Path) -> None:
    run = RunDir(trained)
    config = run.read_config()
    assert config["data"]["classes"] == [spec.name for spec in class_table(4)]
    assert config["train"]["mv"]["input_size"] == 32 and config["train"]["mv"]["ics"]["epochs"] == 1
    metrics = run.read_metrics()
    assert list(metrics["stage"]) == ["backbone", "ic-ce"]
    saved = {split: run.load_logits("ic-ce", "mv", split) for split in ("val", "test")}
    assert saved["test"][0].shape == (8, 4, 4)  # one test group of 2 clips per class
    macs = run.read_macs()["mv"]
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    for path in (copy / "logits").rglob("*"):
        path.unlink() if path.is_file() else None
    (copy / "macs.json").unlink()
    result = run_flatkd("evaluate", "--run", str(copy))
    assert result.exit_code == 0, result.output
    assert "mv        ic-ce     test       8" in result.output
    for split, (logits, labels) in saved.items():
        again = RunDir(copy).load_logits("ic-ce", "mv", split)
        assert torch.equal(again[0], logits) and torch.equal(again[1], labels)
    assert RunDir(copy).read_macs()["mv"] == macs


def test_logits_name_their_clips(trained: Path) -> None:
    run = RunDir(trained)
    source = resolve_data_source(run, None)
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    for split, samples in (("val", splits.val), ("test", splits.test)):
        _, labels = run.load_logits("ic-ce", "mv", split)
        assert run.load_logit_keys("ic-ce", "mv", split) == [s.video for s in samples]
        assert labels.tolist() == [s.label for s in samples]


def test_corrupted_checkpoints_give_one_line_errors(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    best = RunDir(copy).checkpoint_path("ic-ce", "mv")
    best.write_bytes(best.read_bytes()[:100])
    assert_one_line_error(
        run_flatkd("evaluate", "--run", str(copy)), "mv.safetensors: corrupt or not a safetensors file"
    )
    state = RunDir(copy).resume_path("backbone", "mv")
    state.write_bytes(b"PK\x03\x04 not a torch file")
    assert_one_line_error(
        run_flatkd("train", "--modality", "mv", "--run", str(copy), "--resume"),
        "mv.resume.pt: corrupt or unsafe state file",
        "delete it to restart that stage",
    )


def test_bad_settings_give_one_line_errors(dataset: Path, trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"backbone": {"optim": {"lrr": 0.1}}}))
    assert_one_line_error(
        run_flatkd(
            "train",
            "--data",
            str(dataset),
            "--modality",
            "iframe",
            "--run",
            str(tmp_path / "r"),
            "--config",
            str(bad),
        ),
        "bad.yaml.backbone.optim: unknown key 'lrr' (did you mean 'lr'?)",
    )
    assert_one_line_error(
        run_flatkd("train", "--modality", "iframe", "--run", str(tmp_path / "r"), "--set", "batch_sise=2"),
        "unknown key 'batch_sise' (did you mean 'batch_size'?)",
    )
    assert_one_line_error(
        run_flatkd("train", "--modality", "iframe", "--run", str(tmp_path / "r")), "pass --data DIR"
    )
    assert_one_line_error(
        run_flatkd("train", "--modality", "mv", "--run", str(trained)), "already trains mv; pass --resume"
    )
    assert_one_line_error(
        run_flatkd("train", "--data", str(tmp_path), "--modality", "iframe", "--run", str(trained)),
        "was trained on dir",
    )
    assert not (tmp_path / "r").exists()
