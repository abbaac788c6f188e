"""The PyHessian adapter on an indefinite quadratic: exactly the probes asked for, and the largest
*algebraic* eigenvalue (flatkd's meaning) where PyHessian's power iteration finds the largest
magnitude.

The model is :math:`L(w) = \\frac{1}{2N}\\sum_b s_b (x_b^\\top w)^2` with signs :math:`s_b = \\pm 1`,
whose Hessian :math:`X^\\top \\operatorname{diag}(s) X / N = Q \\operatorname{diag}(\\mu) Q^\\top` is
constant and known exactly.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flatkd.landscape import Hessian, reference
from flatkd.landscape.reference import PyHessianBackend


class Linear(nn.Module):
    """:math:`x \\mapsto X w` (one output per row)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


class SignedSquares(nn.Module):
    """:math:`\\frac{1}{2}\\operatorname{mean}_b\\, s_b\\, o_b^2`: an indefinite quadratic loss."""

    def forward(self, outputs: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        return 0.5 * (signs * outputs**2).mean()


def quadratic(eigenvalues: torch.Tensor, batches: int) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A model and ``batches`` batches whose loss has Hessian ``Q diag(eigenvalues) Q^T`` (random Q)."""
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    rows = (n * eigenvalues.abs()).sqrt()[:, None] * q.T  # row b: sqrt(N |mu_b|) q_b
    x, s = rows, torch.sign(eigenvalues)
    cut = n // batches
    return Linear(n), [(x[i * cut : (i + 1) * cut], s[i * cut : (i + 1) * cut]) for i in range(batches)]


def test_quadratic_has_the_hessian_it_claims() -> None:
    eigenvalues = torch.linspace(-3.0, 2.0, 12).double()
    model, data = quadratic(eigenvalues, 2)
    dense = Hessian(model, SignedSquares(), data).operator.matmat(torch.eye(12, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(dense), eigenvalues, rtol=0, atol=1e-10)


def test_trace_uses_exactly_the_probes_asked_for_when_the_running_mean_turns_negative() -> None:
    """Trace 15, probe standard deviation ~45: running means go negative early on many seeds, which
    stops PyHessian's own loop at ``tol=-1`` (shown first) but not the adapter's."""
    eigenvalues = torch.linspace(-10.0, 10.0, 30).double() + 0.5
    model, data = quadratic(eigenvalues, 1)
    stopped_early = [
        len(PyHessianBackend(Hessian(model, SignedSquares(), data).objective).trace(12, tol=-1.0, seed=seed).samples)
        for seed in range(20)
    ]
    assert min(stopped_early) < 12  # the model exercises the failure
    for seed in range(20):
        backend = Hessian(model, SignedSquares(), data, backend="pyhessian")
        estimate = backend.trace(hvps=12, seed=seed)
        assert len(estimate.samples) == estimate.hvps == backend.hvp_count == 12
        assert abs(estimate.value - float(eigenvalues.sum())) <= 6 * estimate.stderr


@pytest.mark.parametrize("batches", [1, 2])
def test_top_eigenvalues_are_the_largest_algebraic_ones_on_every_backend(batches: int) -> None:
    """Eigenvalues -10 (largest magnitude), 4, 2 (largest algebraic), then [-1, 0.5]."""
    eigenvalues = torch.cat([torch.tensor([-10.0, 4.0, 2.0]), torch.linspace(-1.0, 0.5, 27)]).double()
    model, data = quadratic(eigenvalues, batches)
    theirs = Hessian(model, SignedSquares(), data, backend="pyhessian")
    estimate = theirs.eigenvalues(top_k=2, tol=1e-10, max_steps=2000)
    ours = Hessian(model, SignedSquares(), data).eigenvalues(top_k=2, tol=1e-10)
    assert ours.values == pytest.approx([4.0, 2.0], rel=1e-8)
    # PyHessian normalises by norm + 1e-6, so its Rayleigh quotients of H - mu I are low by ~2e-6 (4 + 10)
    assert estimate.values == pytest.approx(ours.values, rel=3e-5)
    assert estimate.hvps == theirs.hvp_count


def test_pyhessian_alone_reports_the_largest_magnitude_there() -> None:
    """The premise of the test above: PyHessian itself, unadapted, returns -10 then 4."""
    eigenvalues = torch.cat([torch.tensor([-10.0, 4.0, 2.0]), torch.linspace(-1.0, 0.5, 27)]).double()
    model, data = quadratic(eigenvalues, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        raw = reference.pyhessian_module.hessian(model, SignedSquares(), data=data[0], cuda=False)
        values, _ = raw.eigenvalues(maxIter=2000, tol=1e-10, top_n=2)
    assert values == pytest.approx([-10.0, 4.0], rel=1e-5)
