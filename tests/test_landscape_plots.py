"""The flatness figures draw real estimates of a tiny model and save atomically."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from flatkd.landscape import Hessian, Surface
from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_surfaces


def test_density_and_surface_figures(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    models = {"iframe": nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)), "mv": nn.Linear(4, 3)}
    densities = {k: Hessian(m, nn.CrossEntropyLoss(), data).density(runs=2, steps=5) for k, m in models.items()}
    surfaces = {k: Surface(m, nn.CrossEntropyLoss(), data) for k, m in models.items()}
    lines = {k: s.line(steps=5) for k, s in surfaces.items()}
    planes = {k: s.plane(steps=5) for k, s in surfaces.items()}

    fig = plot_density(densities)
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 2
    written = save_figure(fig, tmp_path / "density", formats=("png", "pdf"))
    assert written == [tmp_path / "density.png", tmp_path / "density.pdf"]

    fig = plot_surfaces(lines, planes)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["I-frame", "Motion vector"]
    save_figure(fig, tmp_path / "surfaces.png")
    assert (tmp_path / "surfaces.png").stat().st_size > 10_000
