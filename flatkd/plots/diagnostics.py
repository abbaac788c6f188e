"""Diagnostic figures of one classifier's test predictions: the confusion matrix.

A degenerate network (one class predicted for every clip) shows as a single filled column; a
good one as a bright diagonal.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from flatkd.plots import paper_style

#: above this many classes the cells carry no counts and the axes no class names (unreadable)
_MAX_ANNOTATED = 20


def confusion_figure(confusion: np.ndarray, classes: Sequence[str], title: str | None = None) -> Figure:
    """The confusion matrix ``confusion[true, predicted]`` (counts, ``[K, K]``) as an image: each
    row coloured by the share of that true class's clips (so rows of unequal size compare), each
    cell labelled with its count; true classes down, predicted classes across."""
    matrix = np.asarray(confusion, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise ValueError(f"need a [K, K] confusion matrix for {len(classes)} classes, got shape {matrix.shape}")
    support = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, support, out=np.zeros_like(matrix), where=support > 0)
    size = len(classes)
    side = min(9.0, 2.2 + 0.35 * size)
    with paper_style():
        fig, ax = plt.subplots(figsize=(side + 0.8, side))
        image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        ax.grid(False)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        if size <= _MAX_ANNOTATED:
            ticks = np.arange(size)
            ax.set_xticks(ticks, labels=list(classes), rotation=60, ha="right")
            ax.set_yticks(ticks, labels=list(classes))
            for (row, column), count in np.ndenumerate(matrix):
                colour = "white" if shares[row, column] > 0.5 else "black"
                ax.text(column, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if title:
            ax.set_title(title)
    return fig
