"""The report's distillation sections: accuracy of every exit per method (the table of
:func:`flatkd.runs.tables.accuracy_markdown`), each method's gain over the CE baseline, and the
WISE trade-off (:func:`flatkd.runs.tables.wise_markdown`), with their figures."""

from __future__ import annotations

import pandas as pd

from flatkd.errors import FlatkdError
from flatkd.modalities import MODALITIES
from flatkd.report.markdown import FigureLinks, table, todo
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import accuracy_markdown, wise_markdown
from flatkd.runs.wise import read_wise_results

BASELINE = "ce"


def distillation_section(run: RunDir, accuracy: pd.DataFrame, figures: FigureLinks) -> str:
    """Per-exit test accuracy of every method, the gains over CE, and the bar figure."""
    text = accuracy_markdown(accuracy)
    methods = [m for m in dict.fromkeys(accuracy["method"]) if m != BASELINE]
    if accuracy.empty:
        return text  # the training section says how to finish training
    if methods:
        text += "\n" + gain_markdown(accuracy)
    else:
        text += "\n" + todo("Only the CE baseline so far", f"flatkd distill --run {run.path} --method pkd")
    return text + figures.embed("distill_exits", "Test accuracy of every exit, one bar per method")


def gain_markdown(accuracy: pd.DataFrame, split: str = "test") -> str:
    """Per method: the mean gain over CE of the internal classifiers (every exit but the final
    one) of each modality, and the largest gain of a single internal classifier, in points."""
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
        best = f"{ics.max():+.1f} ({ics.idxmax()[0]} {ics.idxmax()[2]})" if not ics.empty else "–"
        rows.append([method, *(f"{means[m]:+.1f}" if m in means else "–" for m in modalities), best])
    headers = ["method", *(f"{m}: IC mean" for m in modalities), "largest IC gain"]
    return f"Gain over {BASELINE} in {split} accuracy (points).\n\n" + table(headers, rows)


def wise_section(run: RunDir, figures: FigureLinks) -> str:
    """The WISE line of every variant and the trade-off figure of every method, or a note naming
    ``flatkd wise``."""
    command = f"flatkd wise --run {run.path}"
    try:
        results = read_wise_results(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    if not results:
        return todo("WISE not run yet", command)
    text = wise_markdown(results)
    for stem in figures.available():
        if stem.startswith("wise_"):
            method = stem.removeprefix("wise_")
            text += figures.embed(stem, f"WISE on the {method} exits: test accuracy against mean MACs per clip")
    return text
