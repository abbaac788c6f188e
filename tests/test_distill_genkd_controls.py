"""Generative KD's controls on tiny networks trained once per module: the CE control and the
no-teacher control draw genkd's batches, have none of its teacher terms, and the GenKD-vs-controls
table in distill.md / genkd_controls.csv agrees with a recomputation from the logits."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.cli import assert_one_line_error, run_flatkd

from flatkd.fileio import load_tensors
from flatkd.runs.comparisons import Arm, Comparison, paired_rows
from flatkd.runs.data_source import resolve_data_source
from flatkd.runs.distill_settings import GenKDSettings
from flatkd.runs.genkd_stage import stage_spec
from flatkd.runs.genkd_tables import GENKD_PAIRS, gradient_ratio_rows
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import Stage
from flatkd.runs.training import load_train_config
from flatkd.train import Batch, fit
from flatkd.train.checkpoint import StageFiles
from flatkd.train.steps import Phase, StepOutput

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4"]
GENKD = {"genkd": {"epochs": 2, "teacher_epochs": 1}, "ics": {"epochs": 1}}
METHODS = ("genkd", "genkd-ce", "genkd-noteacher")


@pytest.fixture(scope="module")
def controlled(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three networks (one backbone epoch, one ic-ce epoch), then genkd and both controls."""
    root = tmp_path_factory.mktemp("genkd")
    run = root / "run"
    modalities = ["--modality", "iframe", "--modality", "mv", "--modality", "residual"]
    result = run_flatkd("train", "--data", str(dataset), *modalities, "--run", str(run), *TRAIN, "--epochs", "1", "--ic-epochs", "1")
    assert result.exit_code == 0, result.output
    shutil.copytree(run, root / "trained")
    settings = root / "genkd.yaml"
    settings.write_text(yaml.safe_dump(GENKD))
    for method in METHODS:
        result = run_flatkd("distill", "--run", str(run), "--method", method, "--config", str(settings))
        assert result.exit_code == 0, result.output
    return run


class Recorded:
    """A training step that notes every batch it is given, per phase (then delegates)."""

    def __init__(self, step: Any, modality: str) -> None:
        self.step, self.modality, self.seen = step, modality, []
        self.phases, self.optimizers, self.trained = step.phases, step.optimizers, step.trained
        self.kept, self.helpers = step.kept, step.helpers

    def phase(self, phase: Phase) -> Any:
        return self.step.phase(phase)

    def __call__(self, phase: Phase, batch: Batch) -> StepOutput:
        clips = batch.inputs[self.modality]
        self.seen.append((phase.name, batch.epoch, batch.labels.tolist(), clips.sum().item(), clips.abs().sum().item()))
        return self.step(phase, batch)

    def epoch_columns(self, epoch: int) -> Any:
        return self.step.epoch_columns(epoch)


def _batches_of(run: RunDir, finetune: Stage, tmp_path: Path) -> list[tuple]:
    """The batches mv's stage of ``finetune`` trains on, per phase, over the fixture's epochs."""
    settings = dataclasses.replace(GenKDSettings(), epochs=2, teacher_epochs=1)
    config = load_train_config(run, "mv")
    spec, step = stage_spec(run, finetune, "mv", settings, config, resolve_data_source(run, None))
    recorder = Recorded(step, "mv")
    files = StageFiles(tmp_path / f"{finetune}.safetensors", tmp_path / f"{finetune}.resume.pt", lambda rows: None, "test")
    fit(spec, recorder, files)
    return recorder.seen


def test_the_controls_draw_the_same_batches_as_genkd(controlled: Path, tmp_path: Path) -> None:
    run = RunDir(controlled)
    genkd = _batches_of(run, Stage.GENKD, tmp_path)
    network_phase = [b[1:] for b in genkd if b[0] == "net"]
    assert [b[1:] for b in genkd if b[0] == "cvae"] == network_phase  # both genkd phases: one order
    assert len({tuple(b[1]) for b in network_phase}) > 1  # several distinct batches, two epochs
    assert [b[1:] for b in _batches_of(run, Stage.GENKD_CE, tmp_path)] == network_phase
    assert [b[1:] for b in _batches_of(run, Stage.GENKD_NOTEACHER, tmp_path) if b[0] == "net"] == network_phase


def test_controls_have_no_teacher_terms_and_their_own_stages(controlled: Path) -> None:
    run = RunDir(controlled)
    metrics = run.read_metrics()
    columns = {s: set(rows.dropna(axis=1, how="all").columns) for s, rows in metrics.groupby("stage")}
    teacher_terms = {"cvae_gd", "net_ad", "ad_grad_ratio"}
    assert teacher_terms <= columns["genkd"]
    assert not teacher_terms & columns["genkd-noteacher"] and "recon_grad_ratio" in columns["genkd-noteacher"]
    assert not {"cvae_cvae", "net_recon", "recon_weight"} & columns["genkd-ce"]
    for stage in ("genkd", "genkd-ce", "genkd-noteacher"):
        assert sorted(metrics.loc[metrics["stage"] == stage, "modality"].unique()) == ["mv", "residual"]
        assert (metrics["stage"] == stage).sum() == 2 * 2  # two epochs per student
    attention = [k for k in load_tensors(run.checkpoint_path("genkd-noteacher", "mv")) if k.startswith("final_transform.")]
    assert attention and not any(k.startswith("final_transform.") for k in load_tensors(run.checkpoint_path("genkd-ce", "mv")))
    # the teacher's branch is trained once, by genkd; the controls never read it
    assert (metrics["stage"] == "genkd-teacher").sum() == 1
    ratios = gradient_ratio_rows(run)
    ad = ratios[ratios["term"] == "ad"]
    assert sorted(ad["modality"]) == ["mv", "residual"] and bool((ad["mean"] > 0).all() and np.isfinite(ad["mean"]).all())


def test_genkd_vs_controls_table_agrees_with_the_logits(controlled: Path) -> None:
    run = RunDir(controlled)
    table = pd.read_csv(controlled / "genkd_controls.csv")
    assert list(zip(table["a"], table["b"])) == list(GENKD_PAIRS) * 2
    assert list(table["modality"]) == ["mv"] * 5 + ["residual"] * 5 and set(table["exit_name"]) == {"fc"}
    for row in table.itertuples():
        a, labels = run.load_logits(row.stage_a, row.modality, "test")
        b, _ = run.load_logits(row.stage_b, row.modality, "test")
        right_a, right_b = (x[:, -1].argmax(-1) == labels for x in (a, b))
        assert row.n == len(labels) and row.accuracy_a == pytest.approx(100 * right_a.float().mean().item())
        assert row.difference == pytest.approx(row.accuracy_a - row.accuracy_b)
        assert (row.a_only, row.b_only) == (int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()))
        assert row.ci_low <= row.difference <= row.ci_high and 0 < row.mcnemar_p <= 1
    text = (controlled / "distill.md").read_text()
    assert "GenKD vs its controls" in text and "| mv | 3 fc | genkd | genkd-noteacher |" in text
    assert "attention distillation (beta AD)" in text


def test_paired_rows_leave_out_what_the_run_lacks(controlled: Path) -> None:
    trained = RunDir(controlled.parent / "trained")
    comparisons = [Comparison(Arm("genkd", "ic-genkd"), Arm("ce", "ic-ce"), "mv"), Comparison(Arm("ce", "ic-ce"), Arm("ce", "ic-ce"), "mv")]
    rows = paired_rows(trained, comparisons)
    assert len(rows) == 1 and rows["difference"].iloc[0] == 0 and rows["mcnemar_p"].iloc[0] == 1
    assert not (controlled.parent / "trained" / "genkd_controls.csv").exists()


def test_an_old_ramp_setting_is_one_line_naming_the_new_key(controlled: Path) -> None:
    trained = controlled.parent / "trained"
    result = run_flatkd("distill", "--run", str(trained), "--method", "genkd", "--set", "genkd.loss.ramp_epochs=20")
    assert_one_line_error(result, "ramp_epochs", "replaced by ramp_fraction")
