"""Adaptive (reparametrisation-invariant) flatness: |θ| H |θ| and ASAM-style sharpness against a
dense Hessian, and unchanged by a function-preserving rescaling that moves the raw trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flatkd.landscape import Hessian, Objective, adaptive_rho_sharpness, dense_hessian, epsilon_sharpness
from flatkd.landscape.measure import quadratic_decrease


def bn_net(scale: float = 1.0) -> nn.Module:
    """Conv -> BN -> ReLU -> conv -> BN -> ReLU -> pool -> linear (123 parameters), float64, eval
    mode, with both convolutions (and the statistics of the BNs they feed) scaled by ``scale``:
    the same function for every ``scale``."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3, eps=1e-12), nn.ReLU(),
        nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2, eps=1e-12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8, 3),
    ).double()  # fmt: skip
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        for conv, bn in ((net[0], net[1]), (net[3], net[4])):
            conv.weight.mul_(scale)
            conv.bias.mul_(scale)
            bn.running_mean.mul_(scale)
            bn.running_var.mul_(scale**2)
    return net.eval()


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(24, 1, 6, 6, generator=generator, dtype=torch.float64), torch.randint(0, 3, (24,), generator=generator))]


def objective(scale: float) -> Objective:
    return Objective(bn_net(scale), nn.CrossEntropyLoss(), data())


def adaptive_dense(obj: Objective) -> torch.Tensor:
    scale = obj.theta.abs()
    return scale[:, None] * dense_hessian(obj) * scale[None, :]


def test_rescaling_keeps_the_function() -> None:
    inputs = data()[0][0]
    assert torch.allclose(bn_net(1.0)(inputs), bn_net(0.5)(inputs), atol=1e-10)
    assert torch.allclose(bn_net(1.0)(inputs), bn_net(2.0)(inputs), atol=1e-10)


def test_adaptive_spectrum_equals_the_dense_adaptive_hessian() -> None:
    obj = objective(1.0)
    exact = adaptive_dense(obj)
    estimate = Hessian.of(obj).spectrum(runs=1, steps=obj.dim, probes=2, tol=1e-10, adaptive=True)
    assert estimate.eigen.values[0] == pytest.approx(float(torch.linalg.eigvalsh(exact)[-1]), rel=1e-8)
    assert estimate.trace.value == pytest.approx(float(exact.trace()), rel=1e-8)  # the Krylov space spans all
    # a short run: an unbiased estimate within its standard error band
    short = Hessian.of(obj).spectrum(runs=1, steps=8, probes=30, seed=3, adaptive=True)
    assert abs(short.trace.value - float(exact.trace())) < 4 * short.trace.stderr


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_rescaling_moves_the_raw_trace_but_not_the_adaptive_measures(scale: float) -> None:
    base, scaled = objective(1.0), objective(scale)
    hessians = [dense_hessian(o) for o in (base, scaled)]
    conv = slice(0, 30)  # the first convolution's weights and biases: curvature times 1/scale^2
    assert float(hessians[1][conv, conv].trace()) == pytest.approx(float(hessians[0][conv, conv].trace()) / scale**2)
    raw = [float(h.trace()) for h in hessians]
    assert abs(raw[1] - raw[0]) > 0.05 * abs(raw[0])  # the whole trace moves too (BN and head dominate it)
    adaptive = [adaptive_dense(o) for o in (base, scaled)]
    assert float(adaptive[1].trace()) == pytest.approx(float(adaptive[0].trace()), rel=1e-7)
    top = [float(torch.linalg.eigvalsh(a)[-1]) for a in adaptive]
    assert top[1] == pytest.approx(top[0], rel=1e-7)
    estimated = [Hessian.of(o).spectrum(runs=1, steps=base.dim, probes=2, adaptive=True).trace.value for o in (base, scaled)]
    assert estimated[1] == pytest.approx(estimated[0], rel=1e-6)
    for measure in (
        lambda o: epsilon_sharpness(o, 0.05, adaptive=True, steps=5),
        lambda o: adaptive_rho_sharpness(o, 0.5, steps=5),
    ):
        values = [measure(o).value for o in (base, scaled)]
        assert values[0] > 0 and values[1] == pytest.approx(values[0], rel=1e-6)


def test_quadratic_decrease_matches_the_dense_hessian() -> None:
    obj = objective(1.0)
    point = obj.theta.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(obj.loss(point), point)
    curvature = float(gradient @ dense_hessian(obj) @ gradient)
    norm, decrease = quadratic_decrease(obj, Hessian.of(obj).operator)
    assert norm == pytest.approx(float(gradient.norm()))
    assert decrease == pytest.approx(float(gradient @ gradient) ** 2 / (2 * curvature))
