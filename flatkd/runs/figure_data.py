"""The plain data the figures draw (:mod:`flatkd.plots`), made from method results.

:mod:`flatkd.plots` imports no method package: it draws data frames. This module turns
:mod:`flatkd.landscape` and :mod:`flatkd.distill` results into those frames, for the run layer's
own figures, the report and the ``analyses/`` notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from flatkd.distill.wise import WiseResult, parse_exit
from flatkd.landscape import DensityEstimate, LossSurface


def density_curves(densities: Mapping[str, DensityEstimate], points: int = 1000) -> tuple[pd.DataFrame, float]:
    """The densities of :func:`flatkd.plots.landscape.plot_density` and its floor.

    Every curve is broadened by one Gaussian width, 1% of the joint spectral range, on one grid
    spanning the joint range plus five widths (:meth:`DensityEstimate.curve`), so the curves are
    comparable. The floor is 1% of the peak that a single eigenvalue (mass 1/n) makes, so isolated
    outliers stay visible on a log axis. Returns (frame with columns ``modality``, ``eigenvalue``,
    ``density``, ``stderr``; floor).
    """
    if not densities:
        raise ValueError("no densities to plot")
    low = min(float(min(n.min() for n in d.nodes)) for d in densities.values())
    high = max(float(max(n.max() for n in d.nodes)) for d in densities.values())
    sigma = max(0.01 * (high - low), 1e-12)
    grid = np.linspace(low - 5 * sigma, high + 5 * sigma, points)
    floor = 0.01 / (max(d.dim for d in densities.values()) * sigma * math.sqrt(2 * math.pi))
    frames = []
    for modality, density in densities.items():
        curve = density.curve(sigma=sigma, grid=grid)
        frames.append(
            pd.DataFrame({"modality": modality, "eigenvalue": grid, "density": curve.density, "stderr": curve.stderr})
        )
    return pd.concat(frames, ignore_index=True), floor


def surface_frame(surfaces: Mapping[str, LossSurface]) -> pd.DataFrame:
    """1-D or 2-D loss surfaces as one long table (:func:`flatkd.plots.landscape.plot_loss_lines`,
    :func:`~flatkd.plots.landscape.plot_loss_planes`): columns ``modality``, ``alpha`` (and
    ``beta`` for planes), ``loss``, ``accuracy`` (NaN where the surface has none)."""
    frames = []
    for modality, surface in surfaces.items():
        columns: dict[str, object] = {"modality": modality}
        for axis, name in enumerate(("alpha", "beta")[: surface.points.shape[-1]]):
            columns[name] = surface.points[..., axis].ravel()
        columns["loss"] = surface.loss.ravel()
        columns["accuracy"] = surface.accuracy.ravel() if surface.accuracy is not None else math.nan
        frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame(columns=["modality", "alpha", "loss", "accuracy"])
    return pd.concat(frames, ignore_index=True)


def wise_variant_label(result: WiseResult) -> str:
    """``"WISE"``, or ``"WISE (no scaling, no lateral)"`` for the ablations."""
    ablations = [name for name, on in (("no scaling", result.scaling), ("no lateral", result.lateral)) if not on]
    return f"WISE ({', '.join(ablations)})" if ablations else "WISE"


def wise_frames(results: Mapping[str, WiseResult], panel: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """WISE results (legend label -> result) as the tables of
    :func:`flatkd.plots.distill.wise_tradeoff_figure`: the tau sweeps and operating points of
    every result, and the single exits of the first one (all results of one panel share their
    exits). ``panel`` fills the ``panel`` column of both (:func:`~flatkd.plots.distill.wise_tradeoff_panels`)."""
    if not results:
        raise ValueError("no WISE results to plot")
    curves = [
        {"panel": panel, "label": label, "macs": point.macs, "accuracy": point.accuracy, "operating": operating}
        for label, result in results.items()
        for point, operating in [*((p, False) for p in result.curve), (result.at_tau, True)]
    ]
    first = next(iter(results.values()))
    exits = [
        {"panel": panel, "modality": modality, "exit": index, "macs": macs, "accuracy": accuracy}
        for (modality, index), macs, accuracy in zip(
            map(parse_exit, first.order), first.exit_macs, first.exit_accuracy, strict=True
        )
    ]
    return pd.DataFrame(curves), pd.DataFrame(exits)


def wise_control_frame(results: Mapping[str, WiseResult], panel: str = "") -> pd.DataFrame:
    """The controls of the first result (every variant of one method shares its logits, hence its
    fusion controls) as the ``controls`` table of :func:`flatkd.plots.distill.wise_tradeoff_figure`:
    columns ``panel``, ``label``, ``macs``, ``accuracy``. The best single exit is left out: it is
    already among the exits."""
    if not results:
        raise ValueError("no WISE results to plot")
    first = next(iter(results.values()))
    rows = [
        {"panel": panel, "label": c.label, "macs": c.macs, "accuracy": c.accuracy}
        for c in first.controls
        if c.name != "best-exit"
    ]
    return pd.DataFrame(rows, columns=["panel", "label", "macs", "accuracy"])
