"""``flatkd demo`` end to end at a tiny size: every step's outputs in one run directory, and a
second run that keeps everything and recomputes nothing."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from helpers.demo import DemoRun, demo_args

from flatkd.cli import cli
from flatkd.distill import load_wise
from flatkd.runs.chain import read_chain
from flatkd.runs.rundir import RunDir

STEPS = [
    "data synth", "data cache", "train", "rank-modalities", "distill ce", "distill kd", "distill pkd",
    "distill pkd-paper", "distill pkd-reversed", "wise", "distill genkd", "distill genkd-ce",
    "distill genkd-noteacher", "report", "total",
]  # fmt: skip


def _digests(run: Path) -> dict[str, str]:
    """SHA-256 of every file the training, ranking and distillation steps wrote."""
    kept = [*run.glob("checkpoints/**/*.*"), *run.glob("logits/**/*.*"), *run.glob("flatness/**/*.*")]
    kept += [run / name for name in ("metrics.csv", "chain.json", "flatness.csv", "distill.csv", "macs.json")]
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(kept) if p.is_file()}


def test_demo_runs_every_step_into_one_run_directory(demo_run: DemoRun) -> None:
    run = demo_run.run
    assert list(pd.read_csv(run / "demo_steps.csv")["step"]) == STEPS
    chain = read_chain(RunDir(run)).order
    assert sorted(chain) == ["iframe", "mv", "residual"]
    table = pd.read_csv(run / "distill.csv")
    for method in ("ce", "kd", "pkd", "pkd-reversed"):
        part = table[(table["method"] == method) & (table["split"] == "test")]
        assert sorted(set(part["modality"])) == ["iframe", "mv", "residual"] and len(part) == 12
    for method in ("genkd", "genkd-ce", "genkd-noteacher"):  # the I-frame network teaches, untouched
        part = table[(table["method"] == method) & (table["split"] == "test")]
        assert sorted(set(part["modality"])) == ["mv", "residual"] and len(part) == 8
    # pkd-paper runs only where the chain is measured and differs from the papers' order
    assert ("pkd-paper" in set(table["method"])) == (chain != ("mv", "residual", "iframe"))
    metrics = pd.read_csv(run / "metrics.csv")
    pkd = metrics[metrics["stage"] == "ic-pkd"]
    # three IC epochs, three phases: epoch e of every network learns from chain[e] (its own head
    # where the chain names the network itself)
    for modality, rows in pkd.groupby("modality"):
        expected = ["own" if t == modality else t for t in chain]
        assert list(rows.sort_values("epoch")["teacher"]) == expected
    wise = load_wise(run / "wise.json")["pkd"]
    assert len(wise.order) == 12 and wise.at_tau.macs > 0
    report = (run / "report.md").read_text()
    assert " -> ".join(chain) in report
    assert "Top-class agreement of the pairs of final heads: iframe-mv" in report
    assert "demo finished" in demo_run.output


def test_running_the_demo_again_keeps_everything_and_recomputes_nothing(demo_run: DemoRun, tmp_path: Path) -> None:
    run, data = tmp_path / "run", tmp_path / "data"  # copies: the other tests read the original
    shutil.copytree(demo_run.run, run)
    shutil.copytree(demo_run.data, data)
    before = _digests(run)
    result = CliRunner().invoke(cli, demo_args(run, data))
    assert result.exit_code == 0, result.output
    assert _digests(run) == before
    assert "36 already cached" in result.output
    assert re.search(r"ic-pkd\s+mv\s+reused", result.output)


def test_other_sizes_in_the_same_directories_give_a_one_line_error(demo_run: DemoRun) -> None:
    before = _digests(demo_run.run)
    args = demo_args(demo_run.run, demo_run.data)
    args[args.index("--classes") + 1] = "6"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flatkd: error: ") and str(demo_run.data) in lines[0], result.stderr
    assert _digests(demo_run.run) == before
