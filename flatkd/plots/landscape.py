"""Flatness figures: eigenvalue densities per modality, 1-D / 2-D loss surfaces (together or
apart), and the flatness metrics with their uncertainty.

The functions take :mod:`flatkd.landscape` results keyed by modality (``"iframe"``, ``"mv"``,
``"residual"``; other keys are drawn in matplotlib's default colours) and return a figure; save it
with :func:`flatkd.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator

from flatkd.landscape.ranking import FlatnessRecord
from flatkd.landscape.results import DensityEstimate
from flatkd.landscape.surface_result import LossSurface
from flatkd.plots import MODALITY_COLORS, MODALITY_LABELS, paper_style


def _label(key: str) -> str:
    return MODALITY_LABELS.get(key, key)


def plot_density(densities: Mapping[str, DensityEstimate], *, points: int = 1000) -> Figure:
    """Eigenvalue densities on a log scale (as in Ghorbani et al. 2019), one curve per key, on a
    common grid and Gaussian width (1% of the joint spectral range), with a band of +-1 standard
    error over the SLQ runs where there are several. The y axis reaches down to 1% of the peak a
    single eigenvalue (mass 1/n) makes, so isolated outliers stay visible."""
    if not densities:
        raise ValueError("no densities to plot")
    low = min(float(min(n.min() for n in d.nodes)) for d in densities.values())
    high = max(float(max(n.max() for n in d.nodes)) for d in densities.values())
    sigma = max(0.01 * (high - low), 1e-12)
    grid = np.linspace(low - 5 * sigma, high + 5 * sigma, points)
    floor = 0.01 / (max(d.dim for d in densities.values()) * sigma * np.sqrt(2 * np.pi))
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        for key, density in densities.items():
            curve = density.curve(sigma=sigma, grid=grid)
            color = MODALITY_COLORS.get(key)
            ax.plot(grid, np.maximum(curve.density, floor), color=color, label=_label(key))
            if np.isfinite(curve.stderr).all():
                ax.fill_between(
                    grid,
                    np.maximum(curve.density - curve.stderr, floor),
                    np.maximum(curve.density + curve.stderr, floor),
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


def plot_surfaces(lines: Mapping[str, LossSurface], planes: Mapping[str, LossSurface], *, levels: int = 20) -> Figure:
    """1-D surfaces (top row, all keys in one panel, loss and, dashed on a second axis, accuracy)
    beside one 2-D contour panel per key (bottom row, shared contour levels and colour bar), the
    trained weights marked."""
    keys = list(planes)
    columns = max(len(keys), 1)
    with paper_style():
        fig = plt.figure(figsize=(3.2 * columns, 6.0), layout="constrained")
        grid = fig.add_gridspec(2, columns)
        if lines:
            _draw_lines(fig.add_subplot(grid[0, :]), lines)
        if planes:
            _draw_planes(fig, [fig.add_subplot(grid[1, column]) for column in range(len(keys))], planes, levels)
    return fig


def plot_loss_lines(lines: Mapping[str, LossSurface]) -> Figure:
    """The 1-D surfaces alone: loss along a filter-normalised random direction per key (solid)
    and, on a second axis, accuracy (dashed)."""
    if not lines:
        raise ValueError("no loss lines to plot")
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0), layout="constrained")
        _draw_lines(ax, lines)
    return fig


def plot_loss_planes(planes: Mapping[str, LossSurface], *, levels: int = 20) -> Figure:
    """The 2-D surfaces alone: one filled contour panel of the loss per key on shared, logarithmic
    levels (one colour bar, so equal colours are equal losses in every panel), the trained
    weights (the origin) starred."""
    if not planes:
        raise ValueError("no loss planes to plot")
    with paper_style():
        fig, axes = plt.subplots(1, len(planes), figsize=(2.3 * len(planes) + 0.9, 2.6), layout="constrained", squeeze=False)
        _draw_planes(fig, list(axes[0]), planes, levels)
    return fig


def plot_flatness_metrics(records: Sequence[FlatnessRecord], *, z: float = 1.96) -> Figure:
    """One bar per record (network exit) and panel per metric: the Hessian trace with its
    ``z``-standard-error interval (1.96: ~95%, the interval the ranking compares), the top
    eigenvalue with the estimator's error bound, and, where surfaces were measured, the mean loss
    increase within rho and epsilon-sharpness (no error bars: single deterministic values).
    Colours name the modality (legend); exits are labelled when a modality has several."""
    if not records:
        raise ValueError("no flatness records to plot")
    panels: list[tuple[str, list[float], list[float] | None]] = [
        (f"Hessian trace (±{z:g} s.e.)", [r.trace for r in records], [z * r.trace_stderr for r in records]),
        ("top Hessian eigenvalue", [r.top_eigenvalue for r in records], [r.top_eigenvalue_error for r in records]),
    ]
    for title, field in (("mean loss increase", "mean_loss_increase"), ("ε-sharpness", "epsilon_sharpness")):
        values = [getattr(r, field) for r in records]
        if all(v is not None and math.isfinite(v) for v in values):
            panels.append((title, values, None))
    repeated = len({r.modality for r in records}) < len(records)
    colors = [MODALITY_COLORS.get(r.modality, "grey") for r in records]
    with paper_style():
        fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6), layout="constrained", squeeze=False)
        for ax, (title, values, errors) in zip(axes[0], panels):
            ax.bar(range(len(records)), values, yerr=errors, color=colors, edgecolor="black", linewidth=0.4, capsize=3)
            ax.set_xticks(range(len(records)), [f"exit {r.exit}" for r in records] if repeated else [])
            ax.tick_params(axis="x", length=3 if repeated else 0)
            ax.grid(False, axis="x")
            ax.set_title(title)
            ax.axhline(0.0, color="black", linewidth=0.6)
        modalities = dict.fromkeys(r.modality for r in records)
        handles = [Patch(color=MODALITY_COLORS.get(m, "grey"), label=_label(m)) for m in modalities]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def _draw_lines(ax: Axes, lines: Mapping[str, LossSurface]) -> None:
    """Loss (solid, left axis) and accuracy in % (dashed, right axis) along each 1-D surface."""
    twin = None
    for key, line in lines.items():
        coords = line.points[..., 0]
        color = MODALITY_COLORS.get(key)
        ax.plot(coords, line.loss, color=color, label=_label(key))
        if line.accuracy is not None:
            twin = twin or ax.twinx()
            twin.plot(coords, 100 * line.accuracy, color=color, linestyle="--", linewidth=1.0)
    ax.set_xlabel("step along a filter-normalised direction")
    ax.set_ylabel("loss (solid)" if twin is not None else "loss")
    if twin is not None:
        twin.set_ylabel("accuracy (%, dashed)")
        twin.grid(False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(lines), frameon=False)


def _draw_planes(fig: Figure, axes: Sequence[Axes], planes: Mapping[str, LossSurface], count: int) -> None:
    """Filled loss contours of each 2-D surface on ``count`` levels shared by all of them
    (logarithmic where every loss is positive), one colour bar; the origin starred."""
    losses = np.concatenate([plane.loss[np.isfinite(plane.loss)] for plane in planes.values()])
    low, high = float(losses.min()), float(losses.max())
    high = max(high, low + 1e-12)
    logarithmic = low > 0
    if logarithmic:
        levels, norm = np.geomspace(low, high, count + 1), LogNorm(low, high)
    else:
        levels, norm = np.linspace(low, high, count + 1), Normalize(low, high)
    filled = None
    for ax, (key, plane) in zip(axes, planes.items()):
        alpha, beta, loss = plane.points[..., 0].ravel(), plane.points[..., 1].ravel(), plane.loss.ravel()
        filled = ax.tricontourf(alpha, beta, loss, levels=levels, norm=norm)
        ax.tricontour(alpha, beta, loss, levels=levels, colors="k", linewidths=0.3)
        ax.plot([0], [0], marker="*", color="white", markeredgecolor="k", markersize=9)
        ax.set_title(_label(key))
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
