"""Method comparisons over training seeds: several runs of the same recipe (``flatkd demo --seed
S`` or ``flatkd train --seed S``, then the same ``distill``/``wise`` commands), each comparison's
paired difference summarised across them.

Within one run every comparison already has a paired bootstrap 95% interval over test clips
(:mod:`flatkd.stats`): how sure we are for *these* networks. Across runs the question is whether
the difference survives retraining: its per-run estimates :math:`d_1, \\dots, d_S` give the mean
and a Student-t 95% interval :math:`\\bar d \\pm t_{0.975, S-1}\\, s_d / \\sqrt S`
(:func:`flatkd.stats.seed_summary`), and the table counts the runs whose own interval lies above or
below zero. A comparison is listed when at least one run has it; ``runs`` says how many.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from flatkd.runs.genkd_tables import genkd_paired_rows
from flatkd.runs.ic_comparisons import comparisons_table
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import accuracy_rows
from flatkd.runs.wise import read_wise_results
from flatkd.stats import seed_summary

#: what identifies one comparison across runs
KEYS = ["family", "modality", "exit", "a", "b"]
RUN_COLUMNS = [*KEYS, "run", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "mcnemar_p"]
SUMMARY_COLUMNS = [*KEYS, "runs", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "sd", "above", "below"]


def run_comparisons(run: RunDir) -> pd.DataFrame:
    """Every paired comparison ``run`` holds, in points (columns :data:`RUN_COLUMNS`): the IC
    methods against CE and own-head KD (``distill.csv``), generative KD against its controls, and
    WISE at its operating point against its controls (``wise.json``)."""
    table = accuracy_rows(run)
    families = [("IC methods", comparisons_table(run, table) if not table.empty else pd.DataFrame()),
                ("GenKD", genkd_paired_rows(run))]  # fmt: skip
    frames = [paired.assign(family=family) for family, paired in families if not paired.empty]
    wise = [
        {
            "family": "WISE", "modality": "all", "exit": -1, "a": f"WISE ({tag})", "b": control.label,
            "accuracy_a": 100 * result.at_tau.accuracy, "accuracy_b": 100 * control.accuracy,
            "difference": 100 * control.versus_wise.difference.estimate,
            "ci_low": 100 * control.versus_wise.difference.low, "ci_high": 100 * control.versus_wise.difference.high,
            "mcnemar_p": control.versus_wise.p_value,
        }
        for tag, result in read_wise_results(run).items()
        for control in result.controls
    ]  # fmt: skip
    frames.append(pd.DataFrame(wise, columns=[c for c in RUN_COLUMNS if c != "run"]))
    return pd.concat(frames, ignore_index=True).assign(run=run.path.name)[RUN_COLUMNS]


def across_runs(per_run: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_comparisons` of several runs (concatenated) summarised per comparison (columns
    :data:`SUMMARY_COLUMNS`; module docstring)."""
    rows = []
    for key, group in per_run.groupby(KEYS, sort=False):
        summary = seed_summary(group["difference"].tolist())
        rows.append({
            **dict(zip(KEYS, key)), "runs": len(group), "accuracy_a": group["accuracy_a"].mean(),
            "accuracy_b": group["accuracy_b"].mean(), "difference": summary.mean, "ci_low": summary.interval.low,
            "ci_high": summary.interval.high, "sd": summary.sd, "above": int((group["ci_low"] > 0).sum()),
            "below": int((group["ci_high"] < 0).sum()),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def seed_comparisons(runs: Sequence[RunDir]) -> pd.DataFrame:
    """:func:`across_runs` of ``runs``."""
    return across_runs(pd.concat([run_comparisons(run) for run in runs], ignore_index=True))
