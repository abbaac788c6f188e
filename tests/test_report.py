"""``flatkd report``: the markdown report of a run directory, read back against the run's files."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from helpers.demo import DemoRun

from flatkd.cli import cli
from flatkd.fileio import read_tensor_metadata
from flatkd.runs.rundir import RunDir


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


def _links(text: str) -> list[str]:
    """The targets of the figures the markdown embeds."""
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


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
    links = _links(text)
    assert sorted(links) == sorted(set(links))
    # (a dot file is another xdist worker's figure being written atomically, not one of the run's)
    figures = [p for p in (run_dir / "figures").glob("*.png") if not p.name.startswith(".")]
    assert sorted((out.parent / link).resolve() for link in links) == sorted(p.resolve() for p in figures)
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
    # the only figures are the confusion matrices the report draws from the logits
    assert sorted(_links(text)) == [f"figures/confusion_{m}.png" for m in ("iframe", "mv", "residual")]


def test_a_run_without_training_is_a_one_line_error(run_dir: Path, tmp_path: Path) -> None:
    untrained = _copy_results(run_dir, tmp_path / "untrained", leave_out=_RESULT_FILES[1:])
    result = CliRunner().invoke(cli, ["report", "--run", str(untrained)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"flatkd: error: {untrained} holds no trained network yet: run `flatkd train")
    assert not (untrained / "report.md").exists()


def test_networks_by_class_show_epochs_chance_classes_and_the_confusion_figure(run_dir: Path, tmp_path: Path) -> None:
    run = RunDir(run_dir)
    text = _report(run_dir, tmp_path / "report.md")
    section = _section(text, "Networks by class")
    rows = {r["modality"]: r for r in _table(section, "modality", "logits of")}
    assert set(rows) == {"iframe", "mv", "residual"}
    classes = run.read_config()["data"]["classes"]
    metrics = run.read_metrics()
    for modality, row in rows.items():
        logits, labels = run.load_logits("ic-ce", modality, "test")
        right = int((logits[:, -1].argmax(-1) == labels).sum())
        assert (row["logits of"], row["n"], row["chance 1/K"]) == ("ic-ce", str(len(labels)), f"{100 / len(classes):.1f}")
        assert row["majority class"] == f"{100 * labels.bincount().max().item() / len(labels):.1f}"
        assert row["accuracy [95% CI]"].startswith(f"{100 * right / len(labels):.1f} [")
        for stage, column in (("backbone", "backbone epoch"), ("ic-ce", "IC epoch")):
            kept = int(read_tensor_metadata(run.checkpoint_path(stage, modality))["epoch"])
            ran = int(((metrics["stage"] == stage) & (metrics["modality"] == modality)).sum())
            assert row[column] == f"{kept} of {ran}"
        line = next(x for x in section.splitlines() if x.startswith(f"{modality} per-class accuracy (%)"))
        assert all(name in line for name in classes)
        assert (run_dir / "figures" / f"confusion_{modality}.png").stat().st_size > 0
        figure = (run_dir / "figures" / f"confusion_{modality}.png").resolve()
        assert figure in [(tmp_path / link).resolve() for link in _links(section)]  # relative to the report


def test_a_degenerate_network_gets_a_warning_and_a_healthy_one_none(run_dir: Path, tmp_path: Path) -> None:
    copy = _copy_results(run_dir, tmp_path / "degenerate", leave_out=("figures",))
    run = RunDir(copy)
    classes = run.read_config()["data"]["classes"]
    logits, labels = run.load_logits("ic-ce", "mv", "test")
    constant = torch.zeros_like(logits)
    constant[..., 0] = 1.0  # every exit predicts the first class for every clip
    run.save_logits("ic-ce", "mv", "test", constant, labels)
    perfect = torch.nn.functional.one_hot(labels, logits.shape[-1]).float()[:, None].expand_as(logits)
    run.save_logits("ic-ce", "iframe", "test", perfect.contiguous(), labels)

    section = _section(_report(copy), "Networks by class")
    n = len(labels)
    first = int((labels == 0).sum())
    assert f"**Warning: mv (ic-ce, final exit) predicts class '{classes[0]}' for every one of its {n} test clips.**" in section
    assert f"**Warning: mv (ic-ce, final exit) test accuracy {100 * first / n:.1f}% ({first}/{n}) is within the 95% range of chance" in section
    assert "Warning: iframe" not in section
    rows = {r["modality"]: r for r in _table(section, "modality", "logits of")}
    assert rows["iframe"]["accuracy [95% CI]"].startswith("100.0 [") and rows["mv"]["IC epoch"].startswith("– of ")
    mv = next(x for x in section.splitlines() if x.startswith("mv per-class accuracy"))
    assert f"({len(classes) - 1} of {len(classes)} classes at 0%)" in mv
    assert all(f"**{name} 0.0**" in mv for name in classes[1:]) and f"{classes[0]} 100.0" in mv
    assert (copy / "figures" / "confusion_mv.png").is_file()
