"""The report's distillation sections: accuracy of every exit per method (the table of
:func:`flatkd.runs.tables.accuracy_markdown`), the epoch and teacher each IC was kept at, the
budget of every method's IC stage (epochs, optimiser, batch; marked where it differs from CE's,
:func:`flatkd.runs.ic_comparisons.budget_markdown`), each method's gain over the CE baseline with
paired bootstrap 95% intervals and McNemar p over the test clips
(:mod:`flatkd.runs.ic_comparisons`), generative KD beside its controls
(:mod:`flatkd.runs.genkd_tables`), and the WISE trade-off
(:func:`flatkd.runs.tables.wise_markdown`), with their figures."""

from __future__ import annotations

import pandas as pd

from flatkd.errors import FlatkdError
from flatkd.modalities import MODALITIES
from flatkd.report.markdown import FigureLinks, table, todo
from flatkd.runs.genkd_tables import genkd_markdown, genkd_paired_rows, gradient_ratio_rows
from flatkd.runs.ic_comparisons import budget_markdown, comparisons_markdown, comparisons_table, selection_markdown
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import accuracy_markdown, wise_markdown, wise_views
from flatkd.runs.wise import read_wise_results

BASELINE = "ce"


def distillation_section(run: RunDir, accuracy: pd.DataFrame, figures: FigureLinks) -> str:
    """Per-exit test accuracy of every method, the IC checkpoints kept, each method's budget, the
    gains over CE with their paired intervals, and the bar figure."""
    text = accuracy_markdown(accuracy)
    methods = [m for m in dict.fromkeys(accuracy["method"]) if m != BASELINE]
    if accuracy.empty:
        return text  # the training section says how to finish training
    text += "\n" + selection_markdown(accuracy) + "\n" + budget_markdown(run, accuracy)
    if methods:
        text += "\n" + gain_markdown(accuracy, comparisons_table(run, accuracy))
    else:
        text += "\n" + todo("Only the CE baseline so far", f"flatkd distill --run {run.path} --method pkd")
    genkd = genkd_paired_rows(run)
    if not genkd.empty:
        text += "\n" + genkd_markdown(genkd, gradient_ratio_rows(run))
    return text + figures.embed("distill_exits", "Test accuracy of every exit, one bar per method")


def gain_markdown(accuracy: pd.DataFrame, paired: pd.DataFrame, split: str = "test") -> str:
    """Per method: the mean gain over CE of the internal classifiers (every exit but the final
    one) of each modality, and the largest gain of a single internal classifier, in points, with
    its paired bootstrap 95% interval and McNemar p from ``paired``
    (:func:`flatkd.runs.ic_comparisons.comparisons_table`); then every paired comparison."""
    part = accuracy[accuracy["split"] == split]
    key = ["modality", "exit", "exit_name"]
    baseline = part[part["method"] == BASELINE].set_index(key)["accuracy"]
    modalities = [m for m in MODALITIES if m in set(part["modality"])]
    final = part.groupby("modality")["exit"].max()
    rows = []
    for method in (m for m in dict.fromkeys(part["method"]) if m != BASELINE):
        gain = 100 * (part[part["method"] == method].set_index(key)["accuracy"] - baseline).dropna()
        ics = gain[[exit_ < final[modality] for modality, exit_, _ in gain.index]]
        means = ics.groupby(level="modality").mean()
        best = _largest_gain(ics, paired, method) if not ics.empty else "–"
        rows.append([method, *(f"{means[m]:+.1f}" if m in means else "–" for m in modalities), best])
    headers = ["method", *(f"{m}: IC mean" for m in modalities), "largest IC gain"]
    text = f"Gain over {BASELINE} in {split} accuracy (points).\n\n" + table(headers, rows)
    return text + "\n" + comparisons_markdown(paired)


def _largest_gain(gains: pd.Series, paired: pd.DataFrame, method: str) -> str:
    """``+7.8 [+0.0, +15.6], p 0.09 (iframe layer2)``: the largest IC gain, its paired interval
    and McNemar p when ``paired`` holds that comparison."""
    modality, exit_, name = gains.idxmax()
    match = paired[(paired["a"] == method) & (paired["b"] == BASELINE) & (paired["modality"] == modality)]
    match = match[match["exit"] == exit_]
    if match.empty:
        return f"{gains.max():+.1f} ({modality} {name})"
    row = match.iloc[0]
    return f"{row.difference:+.1f} [{row.ci_low:+.1f}, {row.ci_high:+.1f}], p {row.mcnemar_p:.2g} ({modality} {name})"


def wise_section(run: RunDir, figures: FigureLinks) -> str:
    """The WISE line of every variant, WISE against its controls (late fusion of the final heads,
    uniform sum of all exits, best single exit; paired intervals and McNemar p) and the trade-off
    figure of every method, or a note naming ``flatkd wise``; variants computed before the
    controls existed get a note naming the command that adds them."""
    command = f"flatkd wise --run {run.path}"
    try:
        results = read_wise_results(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    if not results:
        return todo("WISE not run yet", command)
    text = wise_markdown(results, wise_views(run, results))
    for tag in (tag for tag, result in results.items() if not result.controls):
        text += "\n" + todo(f"WISE variant {tag} predates the controls; re-run it", command)
    for stem in figures.available():
        if stem.startswith("wise_"):
            method = stem.removeprefix("wise_")
            caption = f"WISE on the {method} exits: test accuracy against mean MACs per clip, with its controls"
            text += figures.embed(stem, caption)
    return text
