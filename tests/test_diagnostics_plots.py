"""The confusion-matrix figure draws the counts it is given and saves atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flatkd.plots import save_figure
from flatkd.plots.diagnostics import confusion_figure


def test_confusion_figure_shows_shares_by_true_class_and_the_counts(tmp_path: Path) -> None:
    confusion = np.array([[0, 0, 4], [0, 0, 2], [0, 0, 0]])  # one class predicted for every clip
    fig = confusion_figure(confusion, ["a", "b", "c"], title="mv")
    ax = fig.axes[0]
    image = ax.get_images()[0].get_array()
    assert image.tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]  # each row as a share; an empty row stays 0
    assert [t.get_text() for t in ax.texts] == ["0", "0", "4", "0", "0", "2", "0", "0", "0"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"] and ax.get_title() == "mv"
    assert save_figure(fig, tmp_path / "confusion.png") == [tmp_path / "confusion.png"]
    assert (tmp_path / "confusion.png").stat().st_size > 0

    many = confusion_figure(np.eye(30, dtype=int), [f"c{k}" for k in range(30)])
    assert not many.axes[0].texts  # too many classes to label
    with pytest.raises(ValueError, match="for 2 classes"):
        confusion_figure(confusion, ["a", "b"])
