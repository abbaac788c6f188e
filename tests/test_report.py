"""``flatkd report``: the markdown report of a run directory, read back against the run's files."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.demo import DemoRun

from flatkd.cli import cli


@pytest.fixture
def run_dir(demo_run: DemoRun) -> Path:
    """The finished tiny demo run (shared: read it, never write into it)."""
    return demo_run.run


#: what the report needs of a run (no checkpoints)
_RESULT_FILES = ("config.yaml", "metrics.csv", "macs.json", "logits", "flatness.csv", "flatness_summary.csv", "flatness", "chain.json",
                 "distill.csv", "wise.json", "figures")  # fmt: skip


def _report(run: Path, out: Path | None = None) -> str:
    """``flatkd report`` of ``run`` (into ``out``, by default ``RUN/report.md``); its text."""
    result = CliRunner().invoke(cli, ["report", "--run", str(run), *(["--out", str(out)] if out else [])])
    assert result.exit_code == 0, result.output
    written = out or run / "report.md"
    assert result.output.strip() == f"wrote {written}"
    return written.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(text: str, *first_headers: str) -> list[list[str]]:
    """The header and the rows (cells) of the first markdown table whose header starts with
    ``first_headers``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| " + " | ".join(first_headers) + " |"))
    table = [lines[start], *itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2 :])]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table]


def _table(text: str, *first_headers: str) -> list[dict[str, str]]:
    """:func:`_rows` as dictionaries keyed by the header."""
    headers, *rows = _rows(text, *first_headers)
    return [dict(zip(headers, row)) for row in rows]


def _copy_results(run: Path, into: Path, leave_out: tuple[str, ...]) -> Path:
    into.mkdir()
    for name in (n for n in _RESULT_FILES if n not in leave_out and (run / n).exists()):
        (shutil.copytree if (run / name).is_dir() else shutil.copy)(run / name, into / name)
    return into


def test_report_holds_the_runs_numbers_chain_and_figures(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "report.md"
    text = _report(run_dir, out)

    # accuracy of every exit and method: the cells equal distill.csv (written by flatkd distill)
    distill = pd.read_csv(run_dir / "distill.csv")
    test = distill[distill["split"] == "test"]
    cells = {(r["modality"], r["exit"]): r for r in _table(_section(text, "Distillation"), "modality", "exit", "ce")}
    for row in test.itertuples():
        assert cells[(row.modality, f"{row.exit} {row.exit_name}")][row.method] == f"{100 * row.accuracy:.1f}"
    assert set(test["method"]) >= {"ce", "pkd"}
    # the training section: the CE baseline on validation and test, and the MACs of macs.json
    ce = distill[distill["method"] == "ce"].pivot_table(index=["modality", "exit", "exit_name"], columns="split", values="accuracy")
    macs = json.loads((run_dir / "macs.json").read_text())
    trained = {(r["modality"], r["exit"]): r for r in _table(_section(text, "Training"), "modality", "exit", "validation")}
    assert len(trained) == len(ce)
    for (modality, index, name), accuracy in ce.iterrows():
        row = trained[(modality, f"{index} {name}")]
        assert (row["validation"], row["test"]) == (f"{100 * accuracy['val']:.1f}", f"{100 * accuracy['test']:.1f}")
        cost = macs[modality]["backbone"][index] + macs[modality]["head"][index]
        assert row["MMACs"] == f"{cost / 1e6:.2f}"

    # flatness: the chain of chain.json with its source, reason and warnings, the summary's means
    # and intervals, each network's condition
    chain = json.loads((run_dir / "chain.json").read_text())
    flatness = _section(text, "Flatness")
    assert f"{' -> '.join(chain['chain'])} (source: {chain['source']})" in flatness and chain["reason"][1:] in flatness
    assert all(warning in flatness for warning in chain["warnings"])
    summary = pd.read_csv(run_dir / "flatness_summary.csv")
    for row in summary[summary["metric"].isin(["adaptive_trace", "trace"])].itertuples():
        assert f"{row.mean:.4g} [{row.ci_low:.3g}, {row.ci_high:.3g}]" in flatness
    for modality, group in pd.read_csv(run_dir / "flatness.csv").groupby("modality"):
        assert f"| {modality} | 1 | {len(group)} |" in flatness  # one run, every subset

    # WISE: each variant's accuracy at its tau, as in wise.json
    wise = json.loads((run_dir / "wise.json").read_text())
    _, *rows = _rows(_section(text, "WISE"), "variant", "tau", "accuracy")
    assert {row[0] for row in rows} == set(wise)
    for tag, tau, accuracy, *_ in rows:
        assert (tau, accuracy) == (f"{wise[tag]['tau']:g}", f"{100 * wise[tag]['at_tau']['accuracy']:.1f}")

    # every figure of the run exactly once, linked relative to the report's folder
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(set(links))
    assert sorted((out.parent / link).resolve() for link in links) == sorted(
        p.resolve() for p in (run_dir / "figures").glob("*.png")
    )
    assert "![Hessian eigenvalue density per modality (first subset)](" in flatness

    assert _report(run_dir, out) == text  # the same run gives the same report


def test_sections_without_their_inputs_name_the_command(run_dir: Path, tmp_path: Path) -> None:
    unchained = _copy_results(run_dir, tmp_path / "unchained", leave_out=("chain.json",))
    flatness = _section(_report(unchained), "Flatness")
    assert f"run `flatkd rank-modalities --run {unchained}`" in flatness
    assert "| iframe |" in flatness  # the measurements are still shown

    trained_only = _copy_results(
        run_dir, tmp_path / "trained", leave_out=("flatness.csv", "flatness_summary.csv", "flatness", "chain.json", "wise.json", "figures")
    )
    for stage in (trained_only / "logits").iterdir():  # every method but the CE baseline
        if stage.name != "ic-ce":
            shutil.rmtree(stage)
    text = _report(trained_only)
    assert _section(text, "Flatness").strip() == f"_Not ranked yet: run `flatkd rank-modalities --run {trained_only}`._"
    assert f"run `flatkd distill --run {trained_only} --method pkd`" in _section(text, "Distillation")
    assert _section(text, "WISE").strip() == f"_WISE not run yet: run `flatkd wise --run {trained_only}`._"
    assert "![" not in text


def test_a_run_without_training_is_a_one_line_error(run_dir: Path, tmp_path: Path) -> None:
    untrained = _copy_results(run_dir, tmp_path / "untrained", leave_out=_RESULT_FILES[1:])
    result = CliRunner().invoke(cli, ["report", "--run", str(untrained)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"flatkd: error: {untrained} holds no trained network yet: run `flatkd train")
    assert not (untrained / "report.md").exists()
