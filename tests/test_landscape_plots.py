"""The flatness figures draw the numbers of real estimates of a tiny model and save atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from flatkd.landscape import Hessian, Surface
from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_surfaces
from flatkd.runs.figure_data import density_curves, surface_frame


def test_density_and_surface_figures(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    models = {"iframe": nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)), "mv": nn.Linear(4, 3)}
    densities = {k: Hessian(m, nn.CrossEntropyLoss(), data).density(runs=2, steps=5) for k, m in models.items()}
    surfaces = {k: Surface(m, nn.CrossEntropyLoss(), data) for k, m in models.items()}
    lines = {k: s.line(steps=5) for k, s in surfaces.items()}
    planes = {k: s.plane(steps=5) for k, s in surfaces.items()}

    curves, floor = density_curves(densities)
    grids = [curve["eigenvalue"].to_numpy() for _, curve in curves.groupby("modality")]
    np.testing.assert_array_equal(grids[0], grids[1])  # one grid and width for every modality
    for key, curve in curves.groupby("modality"):  # each curve a probability density
        assert abs(np.trapezoid(curve["density"], curve["eigenvalue"]) - 1.0) < 1e-3, key
    assert 0 < floor < curves["density"].max()
    fig = plot_density(curves, floor=floor)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [line.get_label() for line in ax.lines] == ["I-frame", "Motion vector"]
    for line, (_, curve) in zip(ax.lines, curves.groupby("modality", sort=False)):
        np.testing.assert_array_equal(line.get_xdata(), curve["eigenvalue"])
        np.testing.assert_array_equal(line.get_ydata(), np.maximum(curve["density"], floor))
    written = save_figure(fig, tmp_path / "density", formats=("png", "pdf"))
    assert written == [tmp_path / "density.png", tmp_path / "density.pdf"]

    line_table, plane_table = surface_frame(lines), surface_frame(planes)
    assert list(plane_table.columns) == ["modality", "alpha", "beta", "loss", "accuracy"]
    for key, surface in planes.items():
        rows = plane_table[plane_table["modality"] == key]
        np.testing.assert_array_equal(rows["beta"], surface.points[..., 1].ravel())
        np.testing.assert_array_equal(rows["accuracy"], surface.accuracy.ravel())
    fig = plot_surfaces(line_table, plane_table)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["I-frame", "Motion vector"]
    for drawn, (key, surface) in zip(fig.axes[0].lines, lines.items()):
        np.testing.assert_array_equal(drawn.get_xdata(), surface.points[..., 0])
        np.testing.assert_array_equal(drawn.get_ydata(), surface.loss)
    save_figure(fig, tmp_path / "surfaces.png")
    assert (tmp_path / "surfaces.png").stat().st_size > 10_000
