"""Lanczos' reported error is an upper bound on clustered and repeated top eigenvalues.

``diag(10, 10 - gap, linspace(8, 0, 498))``: until the Krylov space resolves the close pair, the
top Ritz vector mixes both eigenvectors and the nearest other Ritz value is the far bulk, so a
gap-based (Kato-Temple) estimate understates the error; the residual bound must not.
"""

from __future__ import annotations

import pytest
import torch

from flatkd.landscape import DenseOperator, lanczos_eigenvalues

TOL = 1e-6
SEEDS = range(10)


def spectrum(gap: float) -> torch.Tensor:
    """The eigenvalues, descending: a top pair ``gap`` apart above a bulk on [0, 8]."""
    return torch.cat([torch.tensor([10.0, 10.0 - gap], dtype=torch.float64), torch.linspace(8, 0, 498).double()])


def check_bounds(eigenvalues: torch.Tensor, top_k: int, seed: int) -> int:
    """Run Lanczos on ``diag(eigenvalues)``; assert each reported error bounds the true error of
    the i-th value against the i-th largest eigenvalue and that ``converged`` means ``tol`` was met.
    Returns the HVPs used."""
    estimate = lanczos_eigenvalues(DenseOperator(torch.diag(eigenvalues)), top_k=top_k, tol=TOL, seed=seed)
    values = torch.tensor(estimate.values, dtype=torch.float64)
    bounds = torch.tensor(estimate.errors, dtype=torch.float64)
    true = (values - eigenvalues[:top_k]).abs()
    assert (true <= bounds).all(), (seed, true.tolist(), bounds.tolist())
    assert estimate.errors == estimate.residuals
    assert estimate.converged == bool((bounds <= TOL * values.abs()).all())
    if estimate.converged:
        assert (true <= TOL * eigenvalues[:top_k].abs()).all(), (seed, true.tolist())
    return estimate.hvps


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("gap", [1e-2, 1e-3, 1e-4])
def test_clustered_top_pair_error_is_bounded(gap: float, top_k: int) -> None:
    eigenvalues = spectrum(gap)
    hvps = [check_bounds(eigenvalues, top_k, seed) for seed in SEEDS]
    assert max(hvps) < 100  # every run stopped on the tolerance, not the step limit


@pytest.mark.parametrize("seed", SEEDS)
def test_repeated_top_eigenvalue_error_is_bounded(seed: int) -> None:
    """lambda_1 = lambda_2 = 10: the top value's error is |theta_1 - 10|."""
    check_bounds(spectrum(0.0), 1, seed)


def test_repeated_top_eigenvalue_two_values_are_each_near_an_eigenvalue() -> None:
    """With ``top_k=2`` the second value may be the second copy of 10 or the bulk's top (8):
    either way it lies within its bound of an eigenvalue, and the top one within its bound of 10."""
    eigenvalues = spectrum(0.0)
    for seed in SEEDS:
        estimate = lanczos_eigenvalues(DenseOperator(torch.diag(eigenvalues)), top_k=2, tol=TOL, seed=seed)
        assert abs(estimate.values[0] - 10.0) <= estimate.errors[0]
        nearest = (eigenvalues - estimate.values[1]).abs().min()
        assert nearest <= estimate.errors[1]


def test_loose_tolerance_still_bounds_the_error() -> None:
    """At tol=1e-2 the run stops long before the pair is resolved; the bound still holds."""
    eigenvalues = spectrum(1e-3)
    for seed in SEEDS:
        estimate = lanczos_eigenvalues(DenseOperator(torch.diag(eigenvalues)), tol=1e-2, seed=seed)
        assert estimate.converged and estimate.hvps < 20
        assert 10.0 - estimate.values[0] <= estimate.errors[0] <= 1e-2 * estimate.values[0]
