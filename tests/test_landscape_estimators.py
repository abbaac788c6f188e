"""Spectral estimators against exact references: the dense Hessian of a ~300-parameter model
(``torch.autograd.functional.hessian``, float64) and PyHessian run on the same model and data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from flatkd.landscape import (
    DenseOperator,
    Hessian,
    HessianOperator,
    Objective,
    dense_hessian,
    hutchinson_trace,
    hutchpp_trace,
    lanczos_eigenvalues,
    power_eigenvalues,
    reference,
    shared_spectrum,
    slq_density,
)
from flatkd.landscape.estimators.probes import seeded_generator
from flatkd.landscape.estimators.slq import quadrature, slq_runs


def small_cnn() -> nn.Module:
    """Conv + BatchNorm + tanh + linear: 279 parameters, float64, eval mode, non-trivial BN stats."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(), nn.Linear(64, 3)
    ).double()  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two batches of unequal size, so weighting by batch size matters."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    return [(x[:10], y[:10]), (x[10:], y[10:])]


def reference_hessian(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The Hessian of the sample-mean cross-entropy, written out independently of flatkd."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    total = sum(len(y) for _, y in data)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = flat[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        outputs = [functional_call(model, {**params, **buffers}, (x,)) for x, _ in data]
        return sum(nn.functional.cross_entropy(out, y, reduction="sum") for out, (_, y) in zip(outputs, data)) / total

    return torch.autograd.functional.hessian(loss, theta)


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, list, torch.Tensor, torch.Tensor]:
    model, data = small_cnn(), batches()
    matrix = reference_hessian(model, data)
    return model, data, matrix, torch.linalg.eigvalsh(matrix)


def test_hvp_matches_dense_hessian_cached_and_per_batch(setup) -> None:
    model, data, matrix, _ = setup
    objective = Objective(model, nn.CrossEntropyLoss(), data)
    torch.testing.assert_close(dense_hessian(objective), matrix, rtol=1e-10, atol=1e-12)
    v = torch.randn(objective.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for cache in (False, True):
        op = HessianOperator(objective, cache_graph=cache)
        torch.testing.assert_close(op.matvec(v), matrix @ v, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(op.matmat(torch.stack([v, 2 * v], 1))[:, 1], 2 * matrix @ v, rtol=1e-10, atol=1e-12)
        assert op.hvp_count == 3


def test_lanczos_top_eigenvalues_equal_dense(setup) -> None:
    model, data, _, exact = setup
    hessian = Hessian(model, nn.CrossEntropyLoss(), data)
    estimate = hessian.eigenvalues(top_k=3, tol=1e-10, max_steps=hessian.dim)
    torch.testing.assert_close(torch.tensor(estimate.values, dtype=torch.float64), exact.flip(0)[:3], rtol=1e-5, atol=0)
    assert estimate.converged and estimate.hvps == hessian.hvp_count < hessian.dim
    for value, residual in zip(estimate.values, estimate.residuals):  # the rigorous bound holds
        assert (exact - value).abs().min() <= residual + 1e-12


def test_lanczos_stops_early_at_loose_tolerance(setup) -> None:
    _, _, matrix, exact = setup
    loose = lanczos_eigenvalues(DenseOperator(matrix), tol=1e-3, seed=3)
    assert 2 <= loose.hvps < 30
    assert abs(loose.values[0] - exact[-1]) <= loose.residuals[0]


def test_power_iteration_finds_largest_magnitude_and_deflates(setup) -> None:
    _, _, matrix, exact = setup
    by_magnitude = exact[exact.abs().argsort(descending=True)]
    estimate = power_eigenvalues(DenseOperator(matrix), top_k=2, tol=1e-12, max_iter=5000)
    torch.testing.assert_close(torch.tensor(estimate.values, dtype=torch.float64), by_magnitude[:2], rtol=1e-5, atol=0)
    for value, residual in zip(estimate.values, estimate.residuals):
        assert (exact - value).abs().min() <= residual + 1e-12
    pyhessian_rule = power_eigenvalues(DenseOperator(matrix), tol=1e-3)
    assert pyhessian_rule.hvps < 100 and pyhessian_rule.converged


def test_trace_is_exact_once_the_deflation_space_is_everything(setup) -> None:
    model, data, matrix, _ = setup
    hessian = Hessian(model, nn.CrossEntropyLoss(), data)
    n = hessian.dim
    full = shared_spectrum(hessian.operator, runs=1, steps=n, probes=2, max_steps=n)
    assert full.trace.value == pytest.approx(float(matrix.trace()), rel=1e-5)
    assert full.trace.stderr < 1e-8 * abs(full.trace.value)
    assert hutchpp_trace(DenseOperator(matrix), 3 * n).value == pytest.approx(float(matrix.trace()), rel=1e-5)


def test_hutchinson_with_given_probes_is_their_exact_mean(setup) -> None:
    _, _, matrix, _ = setup
    z = torch.randint(0, 2, (matrix.shape[0], 7), generator=torch.Generator().manual_seed(4)).double() * 2 - 1
    estimate = hutchinson_trace(DenseOperator(matrix), z)
    exact = torch.einsum("ip,ij,jp->p", z, matrix, z)
    assert estimate.value == pytest.approx(float(exact.mean()), rel=1e-12)
    assert estimate.stderr == pytest.approx(float(exact.std() / math.sqrt(7)), rel=1e-10)


@pytest.mark.parametrize(
    "estimator",
    [
        lambda op, seed: hutchinson_trace(op, 6, seed=seed),
        lambda op, seed: hutchpp_trace(op, 12, seed=seed),
        lambda op, seed: shared_spectrum(op, runs=3, steps=4, probes=4, tol=1e-2, seed=seed).trace,
    ],
    ids=["hutchinson", "hutch++", "shared"],
)
def test_trace_estimators_are_unbiased_and_their_stderr_calibrated(setup, estimator) -> None:
    """Over 300 seeds the mean is within 4 standard errors of the exact trace, and the reported
    standard error matches the observed spread (the estimators are unbiased conditional on
    their deflation basis, so the average conditional variance is the total variance)."""
    _, _, matrix, _ = setup
    op = DenseOperator(matrix)
    estimates = [estimator(op, seed) for seed in range(300)]
    values = torch.tensor([e.value for e in estimates])
    spread = float(values.std())
    assert abs(float(values.mean()) - float(matrix.trace())) <= 4 * spread / math.sqrt(len(values))
    reported = math.sqrt(sum(e.stderr**2 for e in estimates) / len(estimates))
    assert 0.75 <= reported / spread <= 1.3


def test_slq_quadrature_reproduces_every_moment_of_its_start_vector(setup) -> None:
    _, _, matrix, _ = setup
    (run,) = slq_runs(DenseOperator(matrix), 1, 8, generator=seeded_generator(5, torch.device("cpu")))
    nodes, weights = quadrature(run)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
    v = run.vectors[0]
    for p in range(2 * 8):  # Gauss quadrature with m nodes is exact up to degree 2m - 1
        exact = float(v @ torch.linalg.matrix_power(matrix, p) @ v)
        assert float((weights * nodes**p).sum()) == pytest.approx(exact, rel=1e-8, abs=1e-12)


def test_slq_density_integrates_to_one_and_matches_dense_moments(setup) -> None:
    """Moments p = 1..4 of the SLQ density vs tr(H^p)/n, within 4 standard deviations of the
    R-probe estimator: sqrt(2 (||H^p||_F^2 - sum diag(H^p)^2)) / (n sqrt(R))."""
    _, _, matrix, _ = setup
    n, runs = matrix.shape[0], 20
    density = slq_density(DenseOperator(matrix), runs=runs, steps=10, seed=6)
    curve = density.curve()
    assert float(torch.trapezoid(torch.tensor(curve.density), torch.tensor(curve.grid))) == pytest.approx(1, abs=1e-6)
    for p in range(1, 5):
        power = torch.linalg.matrix_power(matrix, p)
        exact = float(power.trace()) / n
        sigma = math.sqrt(2 * float((power**2).sum() - (power.diagonal() ** 2).sum())) / (n * math.sqrt(runs))
        estimate, stderr = density.moment(p)
        assert abs(estimate - exact) <= 4 * sigma
        assert 0.3 * sigma <= stderr <= 3 * sigma


def test_spectrum_shares_products_between_its_three_estimates(setup) -> None:
    model, data, matrix, exact = setup
    hessian = Hessian(model, nn.CrossEntropyLoss(), data)
    spectrum = hessian.spectrum(top_k=2, tol=1e-10, runs=3, steps=12, probes=4)
    lanczos_run = spectrum.eigen.hvps
    assert spectrum.hvps == hessian.hvp_count == lanczos_run + 2 * 12 + 4
    top = torch.tensor(spectrum.eigen.values, dtype=torch.float64)
    torch.testing.assert_close(top, exact.flip(0)[:2], rtol=1e-5, atol=0)
    assert spectrum.density.runs == 3 and len(spectrum.trace.samples) == 2 + 4
    assert abs(spectrum.trace.value - float(matrix.trace())) <= 5 * spectrum.trace.stderr
    again = Hessian(model, nn.CrossEntropyLoss(), data).spectrum(top_k=2, tol=1e-10, runs=3, steps=12, probes=4)
    assert again.trace.value == spectrum.trace.value  # same seed, same numbers


def test_trace_equals_pyhessian_with_the_same_probes(setup, monkeypatch) -> None:
    """PyHessian's Hutchinson probes are recorded as its HVPs see them, then given to flatkd."""
    model, data, _, _ = setup
    recorded: list[torch.Tensor] = []
    original = reference.pyhessian_module.hessian_vector_product

    def recorder(gradients, params, v):  # noqa: ANN001, ANN202
        recorded.append(torch.cat([t.reshape(-1) for t in v]).clone())
        return original(gradients, params, v)

    monkeypatch.setattr(reference.pyhessian_module, "hessian_vector_product", recorder)
    single = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    theirs = Hessian(model, nn.CrossEntropyLoss(), single, backend="pyhessian").trace(hvps=20, seed=7)
    assert theirs.hvps == len(recorded) == 20
    ours = Hessian(model, nn.CrossEntropyLoss(), single).trace(method="hutchinson", probes=torch.stack(recorded, 1))
    assert ours.value == pytest.approx(theirs.value, rel=1e-4)
    torch.testing.assert_close(
        torch.tensor(ours.samples, dtype=torch.float64), torch.tensor(theirs.samples, dtype=torch.float64),
        rtol=1e-10, atol=1e-10,
    )  # fmt: skip


def test_pyhessian_backend_eigenvalues_and_density(setup) -> None:
    model, data, _, exact = setup
    backend = Hessian(model, nn.CrossEntropyLoss(), data, backend="pyhessian")
    top = backend.eigenvalues(top_k=1, tol=1e-6, max_steps=500)
    assert top.values[0] == pytest.approx(float(exact[-1]), rel=1e-3)  # the largest algebraic, like flatkd's
    density = backend.density(runs=2, steps=15)
    assert density.runs == 2 and density.hvps == 30
    for nodes, weights in zip(density.nodes, density.weights):
        assert float(weights.sum()) == pytest.approx(1, abs=1e-6)
        assert float(nodes.min()) >= float(exact[0]) - 1e-6 and float(nodes.max()) <= float(exact[-1]) + 1e-6
    assert backend.hvp_count == top.hvps + 30
