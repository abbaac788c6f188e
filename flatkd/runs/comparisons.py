"""Paired comparisons of two methods' exits on the same clips of a run (shared by every method's
table of controls: GenKD vs its controls, PKD vs CE and own-head KD, ...).

A :class:`Comparison` names two *arms* (a label and the stage whose logits hold that method's
predictions), a modality, an exit and a split. :func:`paired_rows` reads, per arm, the logits the
stage exported (``logits/<stage>/<modality>.<split>.safetensors``), turns them into one
correctness flag per clip (``argmax_k z[i, exit, k] == y_i``) and compares the two with
:func:`flatkd.stats.compare_paired`: the accuracy difference ``Δ = acc(a) - acc(b)`` with its
paired percentile-bootstrap 95% interval over clips (Efron & Tibshirani 1993, ch. 13) and the
exact McNemar p-value from the discordant clips (McNemar 1947). Both arms must have scored the
same clips in the same order (their label vectors are checked to be equal).

Usage (a method's group of comparisons, then one table)::

    final = -1
    rows = paired_rows(run, [
        Comparison(Arm("pkd", "ic-pkd"), Arm("ce", "ic-ce"), "mv", final),
        Comparison.of_methods(get_method("pkd"), get_method("kd"), "residual", 0),
    ])
    text = paired_markdown(rows, "PKD vs its controls")

A comparison whose logits are not in the run yet (a control not run) is left out of the table,
so the table grows as the controls are run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from flatkd.errors import InputFileError
from flatkd.models import STAGE_NAMES
from flatkd.runs.methods import Method
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import load_train_config
from flatkd.stats import compare_paired
from flatkd.train.config import TrainConfig

#: columns of :func:`paired_rows` (``difference``, ``ci_low``, ``ci_high`` and the accuracies in
#: points; ``a_only``/``b_only``: clips only a / only b got right)
PAIRED_COLUMNS = [
    "a", "b", "stage_a", "stage_b", "modality", "exit", "exit_name", "split", "n", "accuracy_a",
    "accuracy_b", "difference", "ci_low", "ci_high", "a_only", "b_only", "mcnemar_p",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Arm:
    """One side of a comparison: its ``label`` in the table and the ``stage`` holding its logits."""

    label: str
    stage: str


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Arm ``a`` against arm ``b`` (difference a - b) on ``modality``'s exit ``exit`` (negative:
    from the end, -1 is the final head) over the clips of ``split``."""

    a: Arm
    b: Arm
    modality: str
    exit: int = -1
    split: str = "test"

    @classmethod
    def of_methods(cls, a: Method, b: Method, modality: str, exit: int = -1, split: str = "test") -> Comparison:
        """Two ``flatkd distill`` methods, each arm at the stage holding its logits of ``modality``."""
        return cls(Arm(a.name, a.logits_stage(modality)), Arm(b.name, b.logits_stage(modality)), modality, exit, split)

    def available(self, run: RunDir) -> bool:
        """Whether both arms' logits are in ``run``."""
        return all(run.logits_path(arm.stage, self.modality, self.split).is_file() for arm in (self.a, self.b))


def exit_names(config: TrainConfig) -> list[str]:
    """Names of a network's exits in order: the backbone stages with an IC, then ``fc``."""
    return [n for n in STAGE_NAMES[:3] if n in config.exits] + ["fc"]


def clip_correctness(run: RunDir, stage: str, modality: str, split: str, exit: int) -> tuple[np.ndarray, np.ndarray]:
    """Per clip of ``split``: whether exit ``exit`` of ``stage``'s logits predicts the label, and
    the labels (to check that two arms scored the same clips)."""
    logits, labels = run.load_logits(stage, modality, split)
    correct = logits[:, exit].argmax(dim=-1) == labels
    return correct.numpy(), labels.numpy()


def paired_row(run: RunDir, comparison: Comparison) -> dict[str, object]:
    """One row of :data:`PAIRED_COLUMNS` (the stats row of :class:`flatkd.stats.PairedComparison`)."""
    c = comparison
    correct_a, labels_a = clip_correctness(run, c.a.stage, c.modality, c.split, c.exit)
    correct_b, labels_b = clip_correctness(run, c.b.stage, c.modality, c.split, c.exit)
    if not np.array_equal(labels_a, labels_b):
        raise InputFileError(
            f"{run.path}: the {c.split} logits of {c.a.stage} and {c.b.stage} ({c.modality}) are not of the"
            " same clips; re-export them from the same data"
        )
    names = exit_names(load_train_config(run, c.modality))
    index = range(len(names))[c.exit]
    return {
        "a": c.a.label, "b": c.b.label, "stage_a": c.a.stage, "stage_b": c.b.stage, "modality": c.modality,
        "exit": index, "exit_name": names[index], "split": c.split, **compare_paired(correct_a, correct_b).row(),
    }  # fmt: skip


def paired_rows(run: RunDir, comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """The paired table of the ``comparisons`` whose logits ``run`` holds (columns
    :data:`PAIRED_COLUMNS`; empty when none is available)."""
    rows = [paired_row(run, c) for c in comparisons if c.available(run)]
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def paired_markdown(table: pd.DataFrame, title: str) -> str:
    """``table`` (from :func:`paired_rows`) as a markdown table under ``title``: accuracies, the
    difference with its paired-bootstrap 95% interval, the discordant clips and McNemar's p."""
    if table.empty:
        return ""
    lines = [
        f"{title}: {table['split'].iloc[0]} accuracy (%), difference a - b in points with its paired"
        " bootstrap 95% interval over clips, clips only a / only b got right, exact McNemar p.",
        "",
        "| modality | exit | a | b | acc a | acc b | a - b [95% CI] | a only / b only | McNemar p |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.modality} | {row.exit} {row.exit_name} | {row.a} | {row.b} | {row.accuracy_a:.1f}"
            f" | {row.accuracy_b:.1f} | {row.difference:+.1f} [{row.ci_low:+.1f}, {row.ci_high:+.1f}]"
            f" | {row.a_only} / {row.b_only} | {row.mcnemar_p:.3g} |"
        )
    return "\n".join(lines) + "\n"
