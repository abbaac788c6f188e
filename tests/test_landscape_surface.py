"""Loss surfaces and sharpness summaries: exact centre, exact checkpoint ends, filter
normalisation, resumption, epsilon-sharpness against brute force, and the loss-landscapes backend."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flatkd.landscape import (
    LandscapeInputError,
    LossSurface,
    Surface,
    load_surface,
    mean_loss_increase,
    save_surface,
)
from flatkd.landscape.params import ParameterSpace
from flatkd.landscape.surfaces.directions import filter_normalized_direction


def bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 16, 4))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.3, 0.3)
        model[1].running_var.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 3, 6, 6, generator=g), torch.randint(0, 4, (24,), generator=g)
    return [(x[:16], y[:16]), (x[16:], y[16:])]


def model_loss_and_accuracy(model: nn.Module, data: list) -> tuple[float, float]:
    """The model's own eval-mode loss over the batches (sample mean) and accuracy."""
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x) for x, _ in data])
    labels = torch.cat([y for _, y in data])
    return float(nn.functional.cross_entropy(outputs, labels)), float((outputs.argmax(1) == labels).float().mean())


def test_plane_is_centred_on_the_trained_weights(data) -> None:
    model = bn_net(0)
    loss, accuracy = model_loss_and_accuracy(model, data)
    model.train()
    plane = Surface(model, nn.CrossEntropyLoss(), data).plane(steps=5, radius=0.5)
    assert plane.loss.shape == (5, 5) and plane.complete
    assert plane.points[2, 2].tolist() == [0.0, 0.0]
    assert plane.loss[2, 2] == pytest.approx(loss, rel=1e-6) and plane.centre_loss == plane.loss[2, 2]
    assert plane.accuracy is not None and plane.accuracy[2, 2] == pytest.approx(accuracy)
    np.testing.assert_allclose(plane.axes[0], [-0.5, -0.25, 0, 0.25, 0.5])
    line = Surface(model, nn.CrossEntropyLoss(), data).line(steps=5, radius=0.5)
    np.testing.assert_allclose(line.loss, plane.loss[:, 2], rtol=1e-6)  # same seed: the plane's first direction
    within = plane.loss[[1, 2, 2, 2, 3], [2, 1, 2, 3, 2]]  # the points at distance <= 0.25
    assert mean_loss_increase(plane, 0.25) == pytest.approx(float(np.mean(within)) - plane.centre_loss, rel=1e-12)


def test_interpolation_ends_at_both_checkpoints(data) -> None:
    start, end = bn_net(0), bn_net(1)
    surface = Surface(start, nn.CrossEntropyLoss(), data).interpolation(end.state_dict(), steps=5)
    assert surface.points[:, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert surface.loss[0] == pytest.approx(model_loss_and_accuracy(start, data)[0], rel=1e-6)
    assert surface.loss[-1] == pytest.approx(model_loss_and_accuracy(end, data)[0], rel=1e-6)
    assert Surface(start, nn.CrossEntropyLoss(), data).interpolation(end, steps=2).loss[-1] == surface.loss[-1]


def test_filter_normalisation(data) -> None:
    model = bn_net(0)
    with torch.no_grad():
        model[0].weight[2].zero_()
    space = ParameterSpace.of(model)
    theta = space.flatten(dict(model.named_parameters())).detach()
    for biasbn in ("zero", "filter"):
        generator = torch.Generator().manual_seed(0)
        direction = space.unflatten(filter_normalized_direction(space, theta, generator=generator, biasbn=biasbn))
        weights = dict(model.named_parameters())
        for name in ("0.weight", "4.weight"):
            norms = [t.detach().flatten(1).norm(dim=1) for t in (direction[name], weights[name])]
            torch.testing.assert_close(*norms)
        assert float(direction["0.weight"][2].abs().sum()) == 0
        for name in ("0.bias", "1.weight", "1.bias", "4.bias"):
            expected = 0.0 if biasbn == "zero" else float(weights[name].detach().norm())
            assert float(direction[name].norm()) == pytest.approx(expected, rel=1e-6)
    fresh = nn.BatchNorm1d(3)  # weight 1, bias exactly 0: no division by zero
    space = ParameterSpace.of(fresh)
    theta = space.flatten(dict(fresh.named_parameters())).detach()
    d = filter_normalized_direction(space, theta, generator=torch.Generator(), biasbn="filter")
    assert torch.isfinite(d).all() and float(space.unflatten(d)["bias"].abs().sum()) == 0


def test_plane_resumes_from_a_partial_surface(data, tmp_path: Path) -> None:
    model = bn_net(0)
    surface = Surface(model, nn.CrossEntropyLoss(), data)
    saved: list[LossSurface] = []
    full = surface.plane(steps=5, radius=0.3, chunk=7, checkpoint=saved.append)
    assert [int(np.isnan(s.loss).sum()) for s in saved] == [18, 11, 4, 0]
    save_surface(tmp_path / "plane.safetensors", saved[1])
    partial = load_surface(tmp_path / "plane.safetensors")
    assert partial.settings == saved[1].settings and not partial.complete
    resumed = surface.plane(steps=5, radius=0.3, resume=partial)
    np.testing.assert_array_equal(resumed.loss, full.loss)
    np.testing.assert_array_equal(resumed.accuracy, full.accuracy)
    with pytest.raises(LandscapeInputError, match="cannot resume"):
        surface.plane(steps=5, radius=0.4, resume=partial)
    with pytest.raises(LandscapeInputError, match="not fully evaluated"):
        mean_loss_increase(partial, 0.1)


def test_epsilon_sharpness_matches_brute_force_over_the_box() -> None:
    """A linear least-squares model is convex in its 3 parameters, so the maximum over Keskar's
    box is at one of its 8 vertices: enumerate them."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(32, 2, generator=g, dtype=torch.float64), torch.randn(32, 1, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = nn.Linear(2, 1).double()
    surface = Surface(model, nn.MSELoss(), [(x, y)])
    epsilon = 0.05
    result = surface.epsilon_sharpness(epsilon, steps=10)
    theta = torch.cat([model.weight.detach().flatten(), model.bias.detach()])
    width = epsilon * (theta.abs() + 1)
    best = max(
        float(nn.functional.mse_loss(x @ (theta[:2] + s[:2]) + theta[2] + s[2], y[:, 0]))
        for s in (torch.tensor(signs, dtype=torch.float64) * width for signs in itertools.product((-1, 1), repeat=3))
    )
    centre = float(nn.functional.mse_loss(model(x).detach(), y))
    assert result.max_loss == pytest.approx(best, rel=1e-10)
    assert result.value == pytest.approx(100 * (best - centre) / (1 + centre), rel=1e-9)


def test_loss_landscapes_backend_runs_on_the_same_data_and_leaves_the_model_alone(data) -> None:
    model = bn_net(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plane = Surface(model, nn.CrossEntropyLoss(), data, backend="loss-landscapes").plane(steps=5, radius=0.5)
    assert plane.settings["backend"] == "loss-landscapes" and plane.loss.shape == (5, 5)
    assert not (np.linalg.norm(plane.points, axis=-1) == 0).any()  # its grid never visits the centre
    np.testing.assert_allclose(plane.points[0, 0], [-0.5, -0.3])
    np.testing.assert_allclose(plane.points[1, 0], [-0.3, -0.5])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and model.training
    line = Surface(model, nn.CrossEntropyLoss(), data, backend="loss-landscapes").line(steps=4, radius=0.5)
    assert line.points[:, 0].tolist() == [0.125, 0.25, 0.375, 0.5]
    ends = Surface(model, nn.CrossEntropyLoss(), data, backend="loss-landscapes").interpolation(bn_net(1), steps=4)
    assert ends.points[-1, 0] == 1.0
    fresh = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(96, 4))
    with pytest.raises(LandscapeInputError, match="divides by zero"):
        Surface(fresh, nn.CrossEntropyLoss(), data, backend="loss-landscapes").plane(steps=3)


class Pair(nn.Module):
    """``x * f(p)`` with one 1-D parameter ``p = [1, 1]``. loss-landscapes' filter normalisation
    turns its first direction into ``[1, 1]`` and its second (orthogonalised first) into
    ``+-[1, -1]``, so at plane point (a, b): ``mean(p) = 1 + a`` and ``p0 - p1 + 1 = 1 +- 2b``."""

    def __init__(self, f) -> None:  # noqa: ANN001
        super().__init__()
        self.p = nn.Parameter(torch.ones(2, dtype=torch.float64))
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f(self.p)


def test_loss_landscapes_grid_coordinates_are_where_it_evaluates() -> None:
    """MSE against zero is f(p)^2 mean(x^2), so sqrt(loss / loss(p)) - 1 recovers the coordinate
    f depends on: this checks the adapter's reading of the shifted, uncentred grid and of its
    ``distance``."""
    x = torch.randn(8, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = [(x, torch.zeros_like(x))]
    first = Surface(Pair(lambda p: p.mean()), nn.MSELoss(), data, backend="loss-landscapes")
    second = Surface(Pair(lambda p: p[0] - p[1] + 1), nn.MSELoss(), data, backend="loss-landscapes")
    for steps in (4, 5):
        plane = first.plane(steps=steps, radius=0.3)
        np.testing.assert_allclose(np.sqrt(plane.loss / plane.centre_loss) - 1, plane.points[..., 0], atol=1e-12)
        plane = second.plane(steps=steps, radius=0.3)
        recovered = np.abs(np.sqrt(plane.loss / plane.centre_loss) - 1)
        np.testing.assert_allclose(recovered, 2 * np.abs(plane.points[..., 1]), atol=1e-12)
    line = first.line(steps=3, radius=0.3)
    np.testing.assert_allclose(np.sqrt(line.loss / line.centre_loss) - 1, line.points[:, 0], atol=1e-12)
