"""The GPU-facing paths of the training loop, checked on the CPU: losses read from the device
in blocks of steps (as on a GPU) give the same metrics and stop divergence at the same step,
channels-last layout and compilation leave the numbers and checkpoints alone, and validation
ties go to the lower loss."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.clips import StandInClips

from flatkd.config import from_dict
from flatkd.fileio import load_tensors, read_tensor_metadata
from flatkd.models import build_model
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import SplitData, train_network
from flatkd.train import TrainConfig, loop
from flatkd.train.checkpoint import ResumeState, load_resume, save_resume
from flatkd.train.distributed import Dist
from flatkd.train.evaluation import to_device

TIMING = ["seconds", "clips_per_s", "data_wait"]


def _config(**overrides: object) -> TrainConfig:
    settings = {
        "batch_size": 4, "eval_batch_size": 8, "input_size": 32, "num_segments": 2, "workers": 0,
        "backbone": {"epochs": 2, "optim": {"name": "sgd", "lr": 0.05}},
        "ics": {"epochs": 1, "optim": {"name": "adam", "lr": 0.003}},
    }  # fmt: skip
    return from_dict(TrainConfig, settings | overrides)


def _data() -> SplitData:
    return SplitData(
        StandInClips(24, noise=2.0), StandInClips(8, train=False, seed=1, noise=2.0),
        StandInClips(8, train=False, seed=2, noise=2.0),
    )  # fmt: skip


def _train(run: RunDir, **overrides: object) -> pd.DataFrame:
    train_network(run, "mv", _config(**overrides), _data(), num_classes=4)
    return run.read_metrics().drop(columns=TIMING)


def test_losses_checked_in_blocks_give_the_same_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every_step = _train(RunDir(tmp_path / "every"))
    monkeypatch.setattr(loop, "_check_interval", lambda device: 4)  # 6 steps an epoch: a block of 4, then 2
    blocks = _train(RunDir(tmp_path / "blocks"))
    pd.testing.assert_frame_equal(every_step, blocks, check_exact=True)


@pytest.mark.parametrize("interval", [1, 4])
def test_divergence_names_the_step_whatever_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: int) -> None:
    monkeypatch.setattr(loop, "_check_interval", lambda device: interval)
    with pytest.raises(loop.DivergenceError, match=r"loss exploded to .* at epoch 0, step 1 "):
        _train(RunDir(tmp_path / "run"), backbone={"epochs": 1, "optim": {"name": "sgd", "lr": 1e7}})


def test_channels_last_keeps_the_numbers_and_the_checkpoint_layout(tmp_path: Path) -> None:
    plain, nhwc = RunDir(tmp_path / "plain"), RunDir(tmp_path / "nhwc")
    a, b = _train(plain), _train(nhwc, channels_last=True)
    numeric = [c for c in a.columns if a[c].dtype.kind == "f"]
    # the first epoch agrees to rounding; SGD at this step size then amplifies the layout's rounding
    # differences (0.7% in val_loss by epoch 2 on some CPUs), which a wrong layout would exceed by far
    pd.testing.assert_frame_equal(a[numeric].iloc[:1], b[numeric].iloc[:1], rtol=1e-4, atol=1e-5)
    pd.testing.assert_frame_equal(a[numeric], b[numeric], rtol=3e-2, atol=1e-3)
    x = load_tensors(plain.checkpoint_path("ic-ce", "mv"))
    y = load_tensors(nhwc.checkpoint_path("ic-ce", "mv"))  # (Adam on the ICs amplifies the rounding)
    assert {k: v.shape for k, v in x.items()} == {k: v.shape for k, v in y.items()}
    assert all(v.is_contiguous() for v in y.values()), "checkpoints are stored in the plain layout"


def test_to_device_gives_every_frame_nhwc_strides() -> None:
    clips = torch.randn(2, 3, 4, 5, 6)
    placed = to_device(clips, torch.device("cpu"), channels_last=True)
    assert torch.equal(placed, clips)
    assert placed.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert to_device(clips, torch.device("cpu")) is clips


def _state(history: list[dict[str, float]], best_epoch: int) -> ResumeState:
    return ResumeState(len(history), history[best_epoch]["val_acc"], best_epoch, history, {}, {}, {})


def test_a_validation_tie_goes_to_the_lower_loss() -> None:
    history = [{"epoch": 0, "val_acc": 0.25, "val_loss": 1.38}]
    state = _state(history, 0)
    assert loop._improves({"val_acc": 0.25, "val_loss": 1.20}, state)
    assert not loop._improves({"val_acc": 0.25, "val_loss": 1.40}, state)
    assert loop._improves({"val_acc": 0.30, "val_loss": 9.0}, state)
    assert not loop._improves({"val_acc": 0.20, "val_loss": 0.1}, state)
    assert loop._improves({"val_acc": 0.0, "val_loss": math.inf}, ResumeState(0, -math.inf, -1, [], {}, {}, {}))


def test_channels_last_converts_the_4d_weights_and_leaves_others_alone() -> None:
    network = build_model("cpu-tiny", "mv", 4)
    network.attach_final_transform(torch.nn.Conv3d(128, 128, 1))  # a 5-D weight, as generative KD's
    loop._place([network], network, _config(channels_last=True), Dist())
    convolution = network.backbone.conv1.weight
    assert convolution.is_contiguous(memory_format=torch.channels_last) and not convolution.is_contiguous()
    assert network.final_transform.weight.is_contiguous()


def test_epochs_count_from_1_and_an_older_resume_state_is_renumbered(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    metrics = _train(run)
    assert list(metrics["epoch"]) == [1, 2, 1] and list(metrics["stage"]) == ["backbone", "backbone", "ic-ce"]
    assert read_tensor_metadata(run.checkpoint_path("ic-ce", "mv"))["epoch"] == "1"
    old = tmp_path / "old.pt"
    save_resume(old, ResumeState(2, 0.5, 0, [{"epoch": 0, "val_acc": 0.5}, {"epoch": 1, "val_acc": 0.4}], {}, {}, {}))
    state = load_resume(old)
    assert [row["epoch"] for row in state.history] == [1, 2] and state.best_epoch == 1
