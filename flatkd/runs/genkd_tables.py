"""Generative KD beside its controls, as written into ``distill.md`` and ``genkd_controls.csv``.

- The paired table (:mod:`flatkd.runs.comparisons`): the student's final-head test accuracy
  under ``genkd`` against each control (``genkd-ce``: the fine-tuning budget alone;
  ``genkd-noteacher``: attention + CVAE without the teacher terms) and against the CE baseline,
  and each control against the baseline, with the paired bootstrap 95% interval of the
  difference over test clips and McNemar's p. A gain over CE that a control also reaches is not
  the teacher's.
- The measured weight of the teacher: ``|| grad (beta AD) || / || grad CE ||`` and the same for
  the reconstruction term, the ``genkd`` stage's ``ad_grad_ratio`` / ``recon_grad_ratio``
  columns of ``metrics.csv`` (:class:`flatkd.distill.genkd_train.GenKDStep`) summarised over
  epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from flatkd.runs.comparisons import Comparison, paired_markdown, paired_rows
from flatkd.runs.methods import GENKD_STAGE, GENKD_STUDENTS, METHODS
from flatkd.runs.rundir import RunDir

#: (a, b) method pairs of the GenKD-vs-controls table: generative KD against each control and the
#: CE baseline, then each control against the baseline (where the gain comes from)
GENKD_PAIRS = (
    ("genkd", "genkd-ce"), ("genkd", "genkd-noteacher"), ("genkd", "ce"), ("genkd-ce", "ce"),
    ("genkd-noteacher", "ce"),
)  # fmt: skip
#: the terms whose gradient ratio the genkd stage logs (column ``<term>_grad_ratio``)
RATIO_TERMS = {"ad": "attention distillation (beta AD)", "recon": "reconstruction (r(e) MSE)"}
RATIO_COLUMNS = ["modality", "term", "mean", "min", "max", "epochs"]


def genkd_comparisons(modalities: Sequence[str] = GENKD_STUDENTS) -> list[Comparison]:
    """The final heads of :data:`GENKD_PAIRS` on every student modality."""
    return [
        Comparison.of_methods(METHODS[a], METHODS[b], modality, -1)
        for modality in modalities for a, b in GENKD_PAIRS
    ]  # fmt: skip


def genkd_paired_rows(run: RunDir) -> pd.DataFrame:
    """:func:`flatkd.runs.comparisons.paired_rows` of :func:`genkd_comparisons` (the pairs whose
    logits are in ``run``)."""
    return paired_rows(run, genkd_comparisons())


def gradient_ratio_rows(run: RunDir) -> pd.DataFrame:
    """Per student modality and term of :data:`RATIO_TERMS`: mean, min and max over the ``genkd``
    stage's epochs of ``|| grad (w_k L_k) || / || grad L_task ||`` (the reconstruction term only
    over epochs where its ramped weight is above 0). Empty before the stage logged any."""
    metrics = run.read_metrics()
    if metrics.empty:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    rows = []
    for modality, epochs in metrics[metrics["stage"] == GENKD_STAGE].groupby("modality", sort=False):
        for term in RATIO_TERMS:
            column = f"{term}_grad_ratio"
            if column not in epochs:
                continue
            used = epochs[epochs["recon_weight"] > 0] if term == "recon" else epochs
            values = used[column].dropna()
            if not values.empty:
                rows.append([modality, term, values.mean(), values.min(), values.max(), len(values)])
    return pd.DataFrame(rows, columns=RATIO_COLUMNS)


def gradient_ratio_markdown(ratios: pd.DataFrame) -> str:
    """The :func:`gradient_ratio_rows` table in markdown (empty string when there is none)."""
    if ratios.empty:
        return ""
    lines = [
        "Gradient of each auxiliary term relative to the task (CE) gradient in genkd's network stage,"
        " || grad (w L_term) || / || grad L_CE || over the parameters the network optimiser updates"
        " (mean [min, max] over epochs; measured on the first batches of every epoch).",
        "",
        "| modality | term | ratio, mean [min, max] | epochs |",
        "|---|---|---:|---:|",
    ]
    for row in ratios.itertuples(index=False):
        lines.append(
            f"| {row.modality} | {RATIO_TERMS[row.term]} | {row.mean:.2e} [{row.min:.2e}, {row.max:.2e}] | {row.epochs} |"
        )
    return "\n".join(lines) + "\n"


def genkd_markdown(paired: pd.DataFrame, ratios: pd.DataFrame) -> str:
    """The GenKD-vs-controls section of ``distill.md``: the paired table and the gradient ratios
    (empty string when genkd has not run)."""
    parts = [paired_markdown(paired, "GenKD vs its controls (student final heads)"), gradient_ratio_markdown(ratios)]
    return "\n".join(p for p in parts if p)
