"""The report's flatness section: per modality the invariant and raw metrics with their 95%
intervals (``flatness_summary.csv``), whether each network was converged enough to be measured
(``flatness.csv``), the chain PKD follows with where it came from (``chain.json``), the ranking's
warnings and the flatness figures."""

from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd

from flatkd.errors import FlatkdError
from flatkd.landscape import FlatnessRecord, convergence_problems
from flatkd.report.markdown import FigureLinks, number, percent, table, todo
from flatkd.report.run_results import final_exit_records, flatness_records, flatness_summary
from flatkd.runs.chain import read_chain
from flatkd.runs.rundir import RunDir

#: summary columns of the report: metric -> header
SUMMARY_COLUMNS = {
    "adaptive_trace": "adaptive trace",
    "trace": "trace",
    "adaptive_top_eigenvalue": "adaptive λmax",
    "top_eigenvalue": "λmax",
    "adaptive_rho_sharpness": "adaptive ρ-sharpness",
    "epsilon_sharpness": "ε-sharpness",
}


def flatness_section(run: RunDir, figures: FigureLinks) -> str:
    """Metric table, network condition, chain and warnings, or a note naming ``flatkd rank-modalities``."""
    command = f"flatkd rank-modalities --run {run.path}"
    if not run.flatness_path.is_file():
        return todo("Not ranked yet", command)
    try:
        records = final_exit_records(flatness_records(run))
        summary = flatness_summary(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    settings = run.read_config().get("landscape", {})
    runs = sorted({r.run for r in records})
    text = (
        f"Final exits, measured in eval mode on {settings.get('subsets', '?')} disjoint subsets of"
        f" {min(r.clips for r in records)}–{max(r.clips for r in records)} training clips (seed"
        f" {settings.get('seed', '?')}) of {len(runs)} training"
        f" run(s) ({', '.join(runs)}), backend {settings.get('backend', '?')}. Each cell: the mean and its 95%"
        " Student-t interval over the runs (with several) or the subsets; adaptive metrics use |θ| H |θ| and"
        " relative perturbations and are invariant to function-preserving rescalings, raw ones are not. The"
        " ranking uses the first column.\n\n"
    )
    text += _summary_table(summary) + "\n" + _condition_table(records) + "\n" + _chain(run, command)
    for stem, caption in (
        ("eigen_density", "Hessian eigenvalue density per modality (first subset)"),
        ("surfaces", "Loss along a random filter-normalised direction (top) and on a plane (bottom), first subset"),
    ):
        text += figures.embed(stem, caption)
    return text


def _summary_table(summary: pd.DataFrame) -> str:
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for row in summary.itertuples(index=False):
        if row.metric in SUMMARY_COLUMNS:
            interval = "" if math.isnan(row.ci_low) else f" [{number(row.ci_low, 3)}, {number(row.ci_high, 3)}]"
            cells[str(row.modality)][str(row.metric)] = f"{number(row.mean, 4)}{interval}"
    rows = [[m, *(values.get(metric, "–") for metric in SUMMARY_COLUMNS)] for m, values in cells.items()]
    return table(["modality", *SUMMARY_COLUMNS.values()], rows)


def _condition_table(records: list[FlatnessRecord]) -> str:
    """Per modality: what was measured and whether the network is converged enough to be ranked."""
    grouped: dict[str, list[FlatnessRecord]] = defaultdict(list)
    for record in records:
        grouped[record.modality].append(record)
    rows = []
    for modality, group in grouped.items():
        accuracies = [r.accuracy for r in group if r.accuracy is not None]
        problems = convergence_problems(group)
        rows.append([
            modality, len({r.run for r in group}), len(group), f"{group[0].parameters:,}",
            number(sum(r.loss for r in group) / len(group)),
            percent(sum(accuracies) / len(accuracies)) if accuracies else "–", percent(1 / group[0].classes),
            number(max(r.gradient_norm for r in group), 3),
            percent(max(r.quadratic_decrease / r.loss for r in group)),
            number(max(r.top_eigenvalue_bound for r in group), 2),
            "; ".join(problems) if problems else "yes",
        ])  # fmt: skip
    headers = ["modality", "runs", "measurements", "parameters", "loss", "accuracy (%)", "chance (%)",
               "max gradient norm", "max step gain (% of loss)", "max Lanczos bound (numerical)",
               "converged enough to rank"]  # fmt: skip
    note = (
        "_Step gain: the loss decrease of the best step along the gradient under the local quadratic model,"
        " ‖g‖⁴ / (2 gᵀHg); above 10% of the loss the network is not at a minimum. The Lanczos bound is a"
        " numerical bound on the top eigenvalue's error, not an uncertainty._\n"
    )
    return table(headers, rows) + "\n" + note


def _chain(run: RunDir, command: str) -> str:
    if not run.chain_path.is_file():
        return todo("No chain.json yet", command)
    try:
        chain = read_chain(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    scores = ", ".join(f"{m} {number(chain.scores[m])}" for m in chain.measured or chain.order) if chain.scores else "–"
    text = (
        f"\n**Chain** (PKD's teachers, sharpest first): {' -> '.join(chain.order)} (source: {chain.source})."
        f"{' ' + chain.reason[0].upper() + chain.reason[1:] + '.' if chain.reason else ''}\n"
    )
    if chain.measured:
        text += f"Measured order by {chain.metric or 'an unnamed metric'}: {' -> '.join(chain.measured)} ({scores}).\n"
    if chain.warnings:
        text += "\nWarnings of the ranking:\n\n" + "".join(f"- {w}\n" for w in chain.warnings)
    return text
