"""Distillation figures draw the numbers they are given and save atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from flatkd.distill.wise import ExitPoint, WiseResult
from flatkd.plots import save_figure
from flatkd.plots.distill import exit_accuracy_figure, wise_tradeoff_figure
from flatkd.runs.figure_data import wise_frames


def _result(shift: float) -> WiseResult:
    curve = tuple(ExitPoint(t, 0.5 + shift + 0.4 * t, 2e9 + 8e9 * t, (1 - t, t)) for t in (0.0, 0.5, 1.0))
    return WiseResult(
        order=("mv:0", "iframe:0"),
        weights=((1.0,), (0.5, 1.5)),
        scaling=True,
        lateral=True,
        alpha=0.01,
        tau=0.5,
        at_tau=curve[1],
        curve=curve,
        step_accuracy=(0.5, 0.9),
        step_macs=(2e9, 10e9),
        exit_accuracy=(0.5, 0.85),
        exit_macs=(2e9, 8e9),
    )


def test_wise_tradeoff_figure_plots_each_curve_in_gmacs(tmp_path: Path) -> None:
    curves, exits = wise_frames({"WISE": _result(0.0), "no scaling": _result(-0.1)})
    assert len(curves) == 2 * 4 and curves["operating"].sum() == 2  # 3 sweep points + the one at tau
    assert exits[["modality", "exit"]].values.tolist() == [["mv", 0], ["iframe", 0]]
    fig = wise_tradeoff_figure(curves, exits, title="toy")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "mean GMACs per clip"
    curves = [line for line in ax.get_lines() if line.get_label() in ("WISE", "no scaling")]
    np.testing.assert_allclose(curves[0].get_xdata(), [2.0, 6.0, 10.0])
    np.testing.assert_allclose(curves[0].get_ydata(), [50.0, 70.0, 90.0])
    np.testing.assert_allclose(curves[1].get_ydata(), [40.0, 60.0, 80.0])
    circled = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_label().startswith("_")]
    assert [(c.get_xdata()[0], c.get_ydata()[0]) for c in circled] == [pytest.approx((6.0, 70.0)), pytest.approx((6.0, 60.0))]
    single = [c.get_offsets()[0].tolist() for c in ax.collections if len(c.get_offsets())]
    assert single == [pytest.approx([2.0, 50.0]), pytest.approx([8.0, 85.0])]
    written = save_figure(fig, tmp_path / "wise", formats=("png", "pdf"))
    assert all(p.stat().st_size > 0 for p in written)


def test_exit_accuracy_figure_bars_match_the_table(tmp_path: Path) -> None:
    accuracy = {"CE": {"mv": [30.0, 40.0], "iframe": [60.0, 70.0]}, "PKD": {"mv": [35.0, 41.0], "iframe": [66.0, 70.0]}}
    spread = {m: {k: [1.0, 2.0] for k in v} for m, v in accuracy.items()}
    fig = exit_accuracy_figure(accuracy, spread)
    assert [ax.get_title() for ax in fig.axes] == ["Motion vector", "I-frame"]
    mv_bars = sorted((r.get_x(), r.get_height()) for r in fig.axes[0].patches if isinstance(r, Rectangle))
    assert [h for _, h in mv_bars] == [30.0, 35.0, 40.0, 41.0]  # per exit: CE then PKD
    assert save_figure(fig, tmp_path / "bars")[0].stat().st_size > 0
