"""The report's section over training seeds: every method comparison of the run and of its
``--seed-run`` runs, the mean difference with a t-interval over runs (:mod:`flatkd.runs.seeds`)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from flatkd.report.markdown import number, table


def seeds_section(summary: pd.DataFrame, runs: Sequence[str]) -> str:
    """``summary`` (:func:`flatkd.runs.seeds.seed_comparisons`) as a markdown table."""
    if summary.empty:
        return "_No method comparison in these runs yet: run `flatkd distill` / `flatkd wise` in each._\n"
    text = (
        f"Runs: {', '.join(runs)}. Per comparison: mean test accuracy (%) of a and b, the mean difference a − b in"
        " points with its 95% Student-t interval over runs (sd beside it), and how many runs' own paired"
        " bootstrap interval lies above / below zero.\n\n"
    )
    rows = [
        [
            r.family, r.modality, "final" if r.exit == -1 else r.exit, r.a, r.b, r.runs, number(r.accuracy_a, 3),
            number(r.accuracy_b, 3), _difference(r.difference, r.ci_low, r.ci_high, r.runs), number(r.sd, 2),
            f"{r.above} / {r.below}",
        ]
        for r in summary.itertuples(index=False)
    ]  # fmt: skip
    headers = ["family", "modality", "exit", "a", "b", "runs", "acc a", "acc b", "a − b [95% CI over runs]", "sd",
               "runs resolved + / −"]  # fmt: skip
    return text + table(headers, rows, numeric_from=5)


def _difference(mean: float, low: float, high: float, runs: int) -> str:
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]" if runs > 1 else f"{mean:+.1f} (one run)"
