"""IC stages compared like for like: seeds that do not depend on the method, the teacher and epoch
of every IC kept (distill.csv), per-IC selection on validation, the paired table in distill.md,
and a finished stage with other settings refused instead of reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.cli import run_flatkd

from flatkd.distill.pkd import PKDConfig, PKDLoss, build_schedule
from flatkd.errors import ConfigError
from flatkd.fileio import load_tensors
from flatkd.landscape.chain import Chain
from flatkd.runs.chain import write_chain
from flatkd.runs.distill import distill, train_configs
from flatkd.runs.distill_settings import resolve_settings
from flatkd.runs.ic_comparisons import stage_selection
from flatkd.runs.ic_training import selection_path, stage_complete, write_selection
from flatkd.runs.methods import get_method
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import load_train_config
from flatkd.train import exit_accuracy
from flatkd.train.checkpoint import load_resume, save_resume

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4"]


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The I-frame network only: one backbone epoch, three IC (ic-ce) epochs."""
    run = tmp_path_factory.mktemp("selection") / "trained"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "iframe", "--run", str(run), *TRAIN, "--epochs", "1", "--ic-epochs", "3")
    assert result.exit_code == 0, result.output
    write_chain(RunDir(run), Chain(("iframe",)))
    return run


def _distill(run: Path, method: str, select: str = "network") -> None:
    rundir, chosen = RunDir(run), get_method(method)
    config = resolve_settings(rundir, chosen, "iframe", load_train_config(rundir, "iframe"), resume=False)
    distill(rundir, chosen, {"iframe": config}, select=select)  # type: ignore[arg-type]


def test_every_method_sees_the_same_first_batch_from_the_same_initial_ics(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    current = {"method": ""}
    original = PKDLoss.__call__

    def recording(self: PKDLoss, exit_logits, batch):  # type: ignore[no-untyped-def]
        seen.setdefault(current["method"], (batch.labels.clone(), [z.detach().clone() for z in exit_logits[:-1]]))
        return original(self, exit_logits, batch)

    monkeypatch.setattr(PKDLoss, "__call__", recording)
    run = shutil.copytree(trained, tmp_path / "run")
    for stage in ("checkpoints", "logits"):  # ce retrained here, to compare with flatkd train's ic-ce
        shutil.rmtree(run / stage / "ic-ce")
    for method in ("ce", "kd", "pkd"):
        current["method"] = method
        _distill(run, method)
    labels, ics = seen["ce"]
    for method in ("kd", "pkd"):
        assert torch.equal(seen[method][0], labels), method
        assert all(torch.equal(a, b) for a, b in zip(seen[method][1], ics, strict=True)), method
    # the same batches as `flatkd train`'s own ic-ce: CE retrained by distill lands on its weights
    ours, theirs = load_tensors(run / "checkpoints/ic-ce/iframe.safetensors"), load_tensors(trained / "checkpoints/ic-ce/iframe.safetensors")
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs if k.startswith("ics."))
    # kd and a one-teacher chain of the network itself are the same loss: the same weights
    kd, pkd = load_tensors(run / "checkpoints/ic-kd/iframe.safetensors"), load_tensors(run / "checkpoints/ic-pkd/iframe.safetensors")
    assert all(torch.equal(kd[k], pkd[k]) for k in kd)


def test_selection_record_names_the_teacher_of_the_epoch_kept(tmp_path: Path) -> None:
    # 12 epochs, chain mv -> residual -> iframe, release proportions: mv 0-1, residual 2-3, own 4+
    schedule = build_schedule(["mv", "residual", "iframe"], "iframe", 12, PKDConfig())
    run = RunDir(tmp_path)
    path = selection_path(run, "ic-pkd", "iframe")
    path.parent.mkdir(parents=True)
    write_selection(path, "per-ic", schedule, [(1, 0.5), (3, 0.4), (7, 0.6)])
    rows = stage_selection(run, get_method("pkd"), "iframe")
    assert rows["teacher"].tolist() == ["mv", "residual", "own"]
    assert rows["selected_epoch"].tolist() == [1, 3, 7]
    assert set(rows["select"]) == {"per-ic"}


@pytest.fixture(scope="module")
def per_ic(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = shutil.copytree(trained, tmp_path_factory.mktemp("selection") / "per-ic")
    _distill(run, "kd", select="per-ic")
    return run


def test_per_ic_selection_keeps_each_ic_at_its_best_validation_epoch(per_ic: Path) -> None:
    run = RunDir(per_ic)
    metrics = run.read_metrics()
    history = metrics[(metrics["stage"] == "ic-kd") & (metrics["modality"] == "iframe")].reset_index(drop=True)
    logits, labels = run.load_logits("ic-kd", "iframe", "val")
    kept = exit_accuracy(logits, labels).tolist()
    table = pd.read_csv(run.distill_table_path)
    rows = table[(table["method"] == "kd") & (table["split"] == "val")].sort_values("exit")
    for index in range(len(kept) - 1):
        column = history[f"val_acc_exit{index}"]
        best = int(column.idxmax())  # first maximum
        assert rows["selected_epoch"].iloc[index] == history["epoch"].iloc[best]
        assert kept[index] == pytest.approx(column.max())
    assert rows["teacher"].iloc[:-1].tolist() == ["own"] * (len(kept) - 1)
    assert pd.isna(rows["teacher"].iloc[-1])  # the final head is no IC stage's


def test_distill_md_carries_the_paired_table(per_ic: Path) -> None:
    text = RunDir(per_ic).distill_markdown_path.read_text()
    assert "paired bootstrap 95% interval" in text and "McNemar" in text
    assert "| iframe | 0 layer1 | kd | ce |" in text
    assert "| kd | iframe | per-ic |" in text  # the selection table


def test_finished_stage_with_other_settings_is_refused_not_reused(per_ic: Path, tmp_path: Path) -> None:
    run = RunDir(shutil.copytree(per_ic, tmp_path / "run"))
    method = get_method("kd")
    config = resolve_settings(run, method, "iframe", load_train_config(run, "iframe"), resume=True)
    trains = train_configs(run, ["iframe"])
    assert stage_complete(run, method, "iframe", config, trains["iframe"], None, "per-ic")
    with pytest.raises(ConfigError, match="select"):
        stage_complete(run, method, "iframe", config, trains["iframe"], None, "network")
    state = load_resume(run.resume_path("ic-kd", "iframe"))
    state.settings.pop("seed_stream")  # a stage trained before the shared seed stream
    save_resume(run.resume_path("ic-kd", "iframe"), state)
    with pytest.raises(ConfigError, match="seed_stream"):
        stage_complete(run, method, "iframe", config, trains["iframe"], None, "per-ic")
