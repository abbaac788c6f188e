"""Flatness figures: eigenvalue densities per modality, and 1-D / 2-D loss surfaces side by side.

The functions take :mod:`flatkd.landscape` results keyed by modality (``"iframe"``, ``"mv"``,
``"residual"``; other keys are drawn in matplotlib's default colours) and return a figure; save it
with :func:`flatkd.plots.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

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
    beside one 2-D contour panel per key (bottom row), the trained weights marked."""
    keys = list(planes)
    columns = max(len(keys), 1)
    with paper_style():
        fig = plt.figure(figsize=(3.2 * columns, 6.0))
        grid = fig.add_gridspec(2, columns)
        if lines:
            ax = fig.add_subplot(grid[0, :])
            twin = None
            for key, line in lines.items():
                coords = line.points[..., 0]
                color = MODALITY_COLORS.get(key)
                ax.plot(coords, line.loss, color=color, label=_label(key))
                if line.accuracy is not None:
                    twin = twin or ax.twinx()
                    twin.plot(coords, line.accuracy, color=color, linestyle="--", linewidth=1.0)
            ax.set_xlabel("step along a filter-normalised direction")
            ax.set_ylabel("loss")
            if twin is not None:
                twin.set_ylabel("accuracy (dashed)")
                twin.grid(False)
            ax.legend()
        for column, key in enumerate(keys):
            plane = planes[key]
            ax = fig.add_subplot(grid[1, column])
            alpha, beta = plane.points[..., 0], plane.points[..., 1]
            filled = ax.tricontourf(alpha.ravel(), beta.ravel(), plane.loss.ravel(), levels=levels)
            ax.tricontour(alpha.ravel(), beta.ravel(), plane.loss.ravel(), levels=levels, colors="k", linewidths=0.3)
            ax.plot([0], [0], marker="*", color="white", markeredgecolor="k", markersize=9)
            ax.set_title(_label(key))
            ax.set_xlabel(r"$\alpha$")
            ax.set_ylabel(r"$\beta$")
            ax.set_aspect("equal")
            fig.colorbar(filled, ax=ax, shrink=0.8, label="loss")
        fig.tight_layout()
    return fig
