"""The run directory: shared files, locking, and the errors that name the command to run."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch

from flatkd.errors import InputFileError, MissingPrerequisiteError
from flatkd.fileio import save_tensors
from flatkd.runs.rundir import RunDir


def test_metrics_rows_are_replaced_per_stage_and_modality(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_metrics("backbone", "mv", [{"epoch": 0, "val_acc": 0.5}, {"epoch": 1, "val_acc": 0.6}])
    run.write_metrics("backbone", "iframe", [{"epoch": 0, "val_acc": 0.7}])
    run.write_metrics("backbone", "mv", [{"epoch": 0, "val_acc": 0.25}])
    table = run.read_metrics()
    assert table[["stage", "modality", "epoch", "val_acc"]].values.tolist() == [
        ["backbone", "iframe", 0, 0.7],
        ["backbone", "mv", 0, 0.25],
    ]


def _append_rows(path: str, modality: str) -> None:
    run = RunDir(path)
    rows: list[dict] = []
    for epoch in range(15):
        rows.append({"epoch": epoch})
        run.write_metrics("backbone", modality, rows)
        run.update_macs(modality, [epoch], [1])


def test_concurrent_writers_do_not_lose_rows(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_rows, args=(str(tmp_path), m)) for m in ("iframe", "mv", "residual")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    run = RunDir(tmp_path)
    assert run.read_metrics().groupby("modality").size().to_dict() == {"iframe": 15, "mv": 15, "residual": 15}
    assert run.read_macs() == {"iframe": [15], "mv": [15], "residual": [15]}


def test_config_sections_and_missing_prerequisites(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.set_section(["train", "mv"], {"preset": "cpu-tiny"})
    run.set_section(["data"], {"dir": "/data/synth", "classes": ["a", "b"]})
    run.set_section(["train", "iframe"], {"preset": "paper"})
    assert run.section("train", "mv", needs="x") == {"preset": "cpu-tiny"}
    assert run.read_config()["data"]["classes"] == ["a", "b"]
    with pytest.raises(MissingPrerequisiteError, match=r"has no 'train.residual': run `flatkd train` first"):
        run.section("train", "residual", needs="flatkd train")
    with pytest.raises(
        MissingPrerequisiteError,
        match=r"ic-ce/mv\.val\.safetensors is missing: run `flatkd train --run .* --modality mv` first",
    ):
        run.load_logits("ic-ce", "mv", "val")
    with pytest.raises(MissingPrerequisiteError, match="run the command that trains stage 'ic-pkd' first"):
        run.existing_checkpoint("ic-pkd", "mv")
    with pytest.raises(MissingPrerequisiteError, match="macs.json is missing"):
        run.read_macs()


def test_logits_roundtrip_and_corrupt_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    logits, labels = torch.randn(5, 4, 3), torch.tensor([0, 1, 2, 0, 1])
    run.save_logits("backbone", "residual", "test", logits, labels)
    back = run.load_logits("backbone", "residual", "test")
    assert torch.equal(back[0], logits) and torch.equal(back[1], labels)
    run.logits_path("backbone", "residual", "test").write_bytes(b"\x00garbage")
    with pytest.raises(InputFileError, match="corrupt or not a safetensors file"):
        run.load_logits("backbone", "residual", "test")
    run.metrics_path.write_bytes(b'a,b\n1,2,3,4\n"')
    with pytest.raises(InputFileError, match="metrics.csv: (not a readable CSV|truncated)"):
        run.read_metrics()


def test_logits_carry_their_clip_keys_and_old_files_still_load(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    logits, labels = torch.randn(3, 2, 4), torch.tensor([0, 3, 1])
    keys = ["a/v_a_g01_c01", "d/v_d_g02_c01", "b/v_b_g01_c02"]
    run.save_logits("ic-ce", "mv", "test", logits, labels, keys=keys)
    assert run.load_logit_keys("ic-ce", "mv", "test") == keys
    back = run.load_logits("ic-ce", "mv", "test")
    assert torch.equal(back[0], logits) and torch.equal(back[1], labels)
    run.save_logits("ic-ce", "mv", "test", logits, labels, view="25x10", keys=keys)
    assert run.load_logit_keys("ic-ce", "mv", "test", "25x10") == keys
    with pytest.raises(ValueError, match="2 clip keys for 3 clips"):
        run.save_logits("ic-ce", "mv", "val", logits, labels, keys=keys[:2])

    # a file of an older version: the same tensors, no metadata
    save_tensors(run.logits_path("ic-ce", "iframe", "test"), {"logits": logits, "labels": labels})
    assert run.load_logit_keys("ic-ce", "iframe", "test") is None
    assert torch.equal(run.load_logits("ic-ce", "iframe", "test")[0], logits)

    save_tensors(run.logits_path("ic-ce", "residual", "test"), {"logits": logits, "labels": labels}, {"keys": "[1, 2"})
    with pytest.raises(InputFileError, match="'keys' metadata is not a list of clip keys"):
        run.load_logit_keys("ic-ce", "residual", "test")
    with pytest.raises(MissingPrerequisiteError, match="is missing"):
        run.load_logit_keys("ic-ce", "residual", "val")
