"""``--tensorboard``: every epoch row of metrics.csv as TensorBoard scalars (read back with
TensorBoard's own event reader), epochs counted from 1; without the package a one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, run_flatkd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from flatkd.runs.rundir import RunDir

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4",
         "--epochs", "2", "--ic-epochs", "1"]  # fmt: skip


def test_train_writes_every_epoch_row_as_scalars(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *TRAIN, "--tensorboard")
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    metrics = RunDir(run).read_metrics()
    for _, row in metrics.iterrows():
        for column in ("train_loss", "val_acc", "lr"):
            scalars = {s.step: s.value for s in events.Scalars(f"{row['stage']}/mv/{column}")}
            assert scalars[row["epoch"]] == pytest.approx(row[column], rel=1e-6)
    assert sorted(s.step for s in events.Scalars("backbone/mv/val_loss")) == [1, 2]


def test_without_the_package_tensorboard_is_one_line(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = tmp_path / "r"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *TRAIN, "--tensorboard")
    assert_one_line_error(result, "--tensorboard needs the tensorboard package", "pip install 'flatkd[tensorboard]'")
    assert not (run / "config.yaml").exists(), "the refused train records nothing"
