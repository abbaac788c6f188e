"""Flatness figures: eigenvalue densities per modality, 1-D / 2-D loss surfaces (together or
apart), and the flatness metrics with their 95% intervals.

The functions take plain data, long-form :class:`pandas.DataFrame` s with a ``modality`` column
(``"iframe"``, ``"mv"``, ``"residual"``; other values are drawn in matplotlib's default colours),
and return a figure; save it with :func:`flatkd.plots.save_figure`. The run layer turns
:mod:`flatkd.landscape` results into these tables (:mod:`flatkd.runs.figure_data`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator

from flatkd.plots import MODALITY_COLORS, MODALITY_LABELS, paper_style


def _label(key: str) -> str:
    return MODALITY_LABELS.get(key, key)


def plot_density(curves: pd.DataFrame, *, floor: float = 0.0) -> Figure:
    """Eigenvalue densities on a log scale (as in Ghorbani et al. 2019), one curve per modality.

    ``curves``: columns ``modality``, ``eigenvalue`` (the grid), ``density`` and ``stderr`` (a
    band of +-1 standard error is drawn where it is finite). Values below ``floor`` are drawn at
    ``floor``, so a log axis can show isolated outliers without reaching down to zero."""
    if curves.empty:
        raise ValueError("no densities to plot")
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        for key, curve in curves.groupby("modality", sort=False):
            grid, density, stderr = (curve[c].to_numpy(float) for c in ("eigenvalue", "density", "stderr"))
            color = MODALITY_COLORS.get(str(key))
            ax.plot(grid, np.maximum(density, floor), color=color, label=_label(str(key)))
            if np.isfinite(stderr).all():
                ax.fill_between(
                    grid,
                    np.maximum(density - stderr, floor),
                    np.maximum(density + stderr, floor),
                    color=color,
                    alpha=0.2,
                    linewidth=0,
                )
        ax.set_yscale("log")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.set_title("Hessian eigenvalue density")
        ax.legend()
    return fig


def plot_surfaces(lines: pd.DataFrame, planes: pd.DataFrame, *, levels: int = 20) -> Figure:
    """1-D surfaces (top row, all modalities in one panel, loss and, dashed on a second axis,
    accuracy) beside one 2-D contour panel per modality (bottom row, shared contour levels and
    colour bar), the trained weights marked. The tables are those of :func:`plot_loss_lines` and
    :func:`plot_loss_planes`; either may be empty."""
    keys = list(planes["modality"].unique()) if not planes.empty else []
    columns = max(len(keys), 1)
    with paper_style():
        fig = plt.figure(figsize=(3.2 * columns, 6.0), layout="constrained")
        grid = fig.add_gridspec(2, columns)
        if not lines.empty:
            _draw_lines(fig.add_subplot(grid[0, :]), lines)
        if keys:
            _draw_planes(fig, [fig.add_subplot(grid[1, column]) for column in range(len(keys))], planes, levels)
    return fig


def plot_loss_lines(lines: pd.DataFrame) -> Figure:
    """The 1-D surfaces alone: loss along a filter-normalised random direction per modality
    (solid) and, on a second axis, accuracy in % (dashed).

    ``lines``: columns ``modality``, ``alpha`` (the step along the direction), ``loss`` and
    ``accuracy`` (a fraction; NaN or absent where not measured)."""
    if lines.empty:
        raise ValueError("no loss lines to plot")
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0), layout="constrained")
        _draw_lines(ax, lines)
    return fig


def plot_loss_planes(planes: pd.DataFrame, *, levels: int = 20) -> Figure:
    """The 2-D surfaces alone: one filled contour panel of the loss per modality on shared,
    logarithmic levels (one colour bar, so equal colours are equal losses in every panel), the
    trained weights (the origin) starred.

    ``planes``: columns ``modality``, ``alpha``, ``beta`` (the coordinates along the two
    directions) and ``loss`` (NaN where not evaluated)."""
    if planes.empty:
        raise ValueError("no loss planes to plot")
    count = planes["modality"].nunique()
    with paper_style():
        fig, axes = plt.subplots(1, count, figsize=(2.3 * count + 0.9, 2.6), layout="constrained", squeeze=False)
        _draw_planes(fig, list(axes[0]), planes, levels)
    return fig


#: panel titles of the metrics :func:`plot_flatness_metrics` draws by default (invariant ones first)
FLATNESS_PANELS = {
    "adaptive_trace": "adaptive trace tr(|θ|H|θ|)",
    "adaptive_top_eigenvalue": "adaptive λmax(|θ|H|θ|)",
    "trace": "Hessian trace",
    "top_eigenvalue": "top Hessian eigenvalue",
    "adaptive_rho_sharpness": "adaptive ρ-sharpness",
    "epsilon_sharpness": "ε-sharpness (Keskar)",
}


def plot_flatness_metrics(summary: pd.DataFrame, panels: dict[str, str] | None = None) -> Figure:
    """One panel per metric, one bar per modality: the mean over data subsets (and training runs)
    with its 95% interval as the error bar (none where the summary has no interval).

    ``summary``: the columns of ``flatness_summary.csv``
    (:func:`flatkd.landscape.summary_table`): ``modality``, ``metric``, ``mean``, ``ci_low``,
    ``ci_high``, ``spread_over``. ``panels``: metric -> title (default :data:`FLATNESS_PANELS`,
    those present in ``summary``)."""
    chosen = {m: t for m, t in (panels or FLATNESS_PANELS).items() if m in set(summary["metric"])} if len(summary) else {}
    if not chosen:
        raise ValueError("no flatness metrics to plot")
    with paper_style():
        fig, axes = plt.subplots(1, len(chosen), figsize=(2.2 * len(chosen), 2.6), layout="constrained", squeeze=False)
        for ax, (metric, title) in zip(axes[0], chosen.items()):
            rows = summary[summary["metric"] == metric]
            means = rows["mean"].to_numpy(dtype=float)
            low = np.nan_to_num(means - rows["ci_low"].to_numpy(dtype=float), nan=0.0)
            high = np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - means, nan=0.0)
            colors = [MODALITY_COLORS.get(str(m), "grey") for m in rows["modality"]]
            ax.bar(range(len(rows)), means, yerr=[low, high], color=colors, edgecolor="black", linewidth=0.4, capsize=3)
            ax.set_xticks([])
            ax.grid(False, axis="x")
            over = ", ".join(sorted(set(rows["spread_over"].astype(str)) - {"none"})) or "no interval"
            ax.set_title(f"{title}\n(95% over {over})" if over != "no interval" else f"{title}\n({over})")
            ax.axhline(0.0, color="black", linewidth=0.6)
        modalities = list(dict.fromkeys(str(m) for m in summary["modality"]))
        handles = [Patch(color=MODALITY_COLORS.get(m, "grey"), label=_label(m)) for m in modalities]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def _draw_lines(ax: Axes, lines: pd.DataFrame) -> None:
    """Loss (solid, left axis) and accuracy in % (dashed, right axis) along each 1-D surface."""
    twin = None
    for key, line in lines.groupby("modality", sort=False):
        color = MODALITY_COLORS.get(str(key))
        ax.plot(line["alpha"].to_numpy(float), line["loss"].to_numpy(float), color=color, label=_label(str(key)))
        accuracy = line["accuracy"].to_numpy(float) if "accuracy" in line else np.array([math.nan])
        if np.isfinite(accuracy).any():
            twin = twin or ax.twinx()
            twin.plot(line["alpha"].to_numpy(float), 100 * accuracy, color=color, linestyle="--", linewidth=1.0)
    ax.set_xlabel("step along a filter-normalised direction")
    ax.set_ylabel("loss (solid)" if twin is not None else "loss")
    if twin is not None:
        twin.set_ylabel("accuracy (%, dashed)")
        twin.grid(False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=lines["modality"].nunique(), frameon=False)


def _draw_planes(fig: Figure, axes: list[Axes], planes: pd.DataFrame, count: int) -> None:
    """Filled loss contours of each 2-D surface on ``count`` levels shared by all of them
    (logarithmic where every loss is positive), one colour bar; the origin starred."""
    losses = planes["loss"].to_numpy(float)
    losses = losses[np.isfinite(losses)]
    low, high = float(losses.min()), float(losses.max())
    high = max(high, low + 1e-12)
    logarithmic = low > 0
    if logarithmic:
        levels, norm = np.geomspace(low, high, count + 1), LogNorm(low, high)
    else:
        levels, norm = np.linspace(low, high, count + 1), Normalize(low, high)
    filled = None
    for ax, (key, plane) in zip(axes, planes.groupby("modality", sort=False)):
        alpha, beta, loss = (plane[c].to_numpy(float) for c in ("alpha", "beta", "loss"))
        filled = ax.tricontourf(alpha, beta, loss, levels=levels, norm=norm)
        ax.tricontour(alpha, beta, loss, levels=levels, colors="k", linewidths=0.3)
        ax.plot([0], [0], marker="*", color="white", markeredgecolor="k", markersize=9)
        ax.set_title(_label(str(key)))
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(r"$\beta$")
        ax.set_aspect("equal")
        ax.set_xticks([alpha.min(), 0.0, alpha.max()])
        ax.set_yticks([beta.min(), 0.0, beta.max()])
        ax.grid(False)
    bar = fig.colorbar(filled, ax=list(axes), shrink=0.85, label="loss")
    if logarithmic:  # ticks at 1, 2, 5 x 10^k rather than at the (arbitrary) level values
        ticks = [t for t in LogLocator(subs=(1.0, 2.0, 5.0)).tick_values(low, high) if low <= t <= high]
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.minorticks_off()
