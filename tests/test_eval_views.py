"""The papers' test protocol (CoViAR's 25 segments x 10 crops): the crops, the views per clip, and
``flatkd evaluate --segments 25 --crops 10`` storing the mean of the per-view logits beside the
training-time view, on a tiny trained run of real PyAV-encoded clips."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from helpers.cli import run_flatkd

from flatkd.data.transforms import CropBox, centre_crop, evaluation_crops
from flatkd.data.views import EvalView, ViewDataset
from flatkd.runs.data_source import open_split_data, resolve_data_source
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import load_network, load_train_config

FAST = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0",
        "--batch-size", "4", "--epochs", "1", "--ic-epochs", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "views"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *FAST)
    assert result.exit_code == 0, result.output
    return run


def test_ten_crops_are_the_centre_and_corners_each_flipped() -> None:
    views = evaluation_crops(48, 64, 10)
    side = 42  # 0.875 * 48
    boxes = [box for box, _ in views]
    assert [flip for _, flip in views] == [False, True] * 5
    assert boxes[::2] == boxes[1::2]
    assert boxes[::2] == [
        CropBox(0, 0, side, side), CropBox(0, 22, side, side), CropBox(6, 0, side, side),
        CropBox(6, 22, side, side), centre_crop(48, 64),
    ]  # fmt: skip
    assert evaluation_crops(48, 64, 1) == ((centre_crop(48, 64), False),)
    with pytest.raises(Exception, match="test crops must be one of 1, 10"):
        evaluation_crops(48, 64, 5)
    assert EvalView.parse("25x10") == EvalView(25, 10) and EvalView(25, 10).name == "25x10"


def test_evaluate_25x10_stores_the_mean_of_the_per_view_logits(trained: Path) -> None:
    run = RunDir(trained)
    plain = run.load_logits("ic-ce", "mv", "test")
    result = run_flatkd("evaluate", "--run", str(trained), "--segments", "25", "--crops", "10")
    assert result.exit_code == 0, result.output
    assert "test 25x10      8" in result.output
    assert torch.equal(run.load_logits("ic-ce", "mv", "test")[0], plain[0])  # the training view is kept
    stored, labels = run.load_logits("ic-ce", "mv", "test", "25x10")
    assert stored.shape == plain[0].shape == (8, 4, 4) and torch.equal(labels, plain[1])

    config = load_train_config(run, "mv")
    clips = open_split_data(resolve_data_source(run, None), dataclasses.replace(config, num_segments=25), ("mv",)).test
    views = ViewDataset(clips, 10)
    inputs, label = views[0]
    assert inputs["mv"].shape == (10, 25, 2, 32, 32) and label == labels[0]
    # the flipped view negates horizontal motion: its dx differs from the unflipped one
    assert not torch.allclose(inputs["mv"][0], inputs["mv"][1])
    network = load_network(run, "mv", "ic-ce")
    expected = []
    with torch.no_grad():
        for index in range(len(clips)):
            per_view = []
            for plan in views.plans(index):  # each view read and transformed on its own
                x = clips.transform(clips.read_windows(index, plan), plan)["mv"]
                per_view.append(torch.stack(network(x[None]), dim=1)[0])
            assert len(per_view) == 10
            expected.append(torch.stack(per_view).mean(dim=0))
    torch.testing.assert_close(stored, torch.stack(expected), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(stored, plain[0])

    wise = run_flatkd("wise", "--run", str(trained), "--method", "ce")
    assert wise.exit_code == 0, wise.output
    assert "WISE ce (25x10 view)" in wise.output
    assert run.get_section(["wise", "ce"])["view"] == "25x10"
    assert " | 25x10 |\n" in run.distill_markdown_path.read_text()
    report = run_flatkd("report", "--run", str(trained))
    assert report.exit_code == 0, report.output
    text = run.report_path.read_text()
    assert "## Test protocol" in text and "| ic-ce | mv | 3 | 25x10 | 8 |" in text


def test_one_crop_at_the_training_segments_is_the_training_view(trained: Path) -> None:
    run = RunDir(trained)
    config = load_train_config(run, "mv")
    clips = open_split_data(resolve_data_source(run, None), config, ("mv",)).test
    inputs, label = ViewDataset(clips, 1)[3]
    assert torch.equal(inputs["mv"][0], clips[3][0]["mv"]) and label == clips[3][1]
    refused = run_flatkd("evaluate", "--run", str(trained), "--crops", "5")
    assert refused.exit_code == 2 and "'5' is not one of '1', '10'" in refused.stderr


def test_evaluate_with_one_crop_stores_the_views_logits(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "one-crop"
    shutil.copytree(trained, copy)
    result = run_flatkd("evaluate", "--run", str(copy), "--segments", "5", "--crops", "1")
    assert result.exit_code == 0, result.output
    logits, labels = RunDir(copy).load_logits("ic-ce", "mv", "test", view="5x1")
    assert logits.shape[0] == labels.shape[0] and torch.isfinite(logits).all()
