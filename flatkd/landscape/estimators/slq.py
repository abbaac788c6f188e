"""Spectral density by stochastic Lanczos quadrature (SLQ).

The spectral measure of a symmetric :math:`A` with eigenpairs :math:`(\\lambda_j, u_j)` is
:math:`\\mu = \\frac{1}{n}\\sum_j \\delta_{\\lambda_j}`. For a unit vector :math:`v = z/\\sqrt n`
with Rademacher :math:`z`, :math:`E[(v^\\top u_j)^2] = 1/n`, so the measure
:math:`\\mu_v = \\sum_j (v^\\top u_j)^2 \\delta_{\\lambda_j}` is an unbiased estimate of :math:`\\mu`.
:math:`m` Lanczos steps from :math:`v` give its Gauss quadrature rule: nodes :math:`\\theta_i`
(eigenvalues of :math:`T_m`) and weights :math:`\\tau_i^2` (squared first components of
:math:`T_m`'s eigenvectors), exact for polynomials of degree :math:`\\le 2m-1` (Golub & Meurant,
*Matrices, Moments and Quadrature*, 2010, ch. 6). Averaging over runs and broadening each node
with a Gaussian gives the density (Lin, Saad & Yang, SIAM Review 2016, §3; Ghorbani, Krishnan &
Xiao, "An investigation into neural net optimization via Hessian eigenvalue density", ICML 2019;
PyHessian's ``density()``). In high dimension :math:`\\mu_v` concentrates around :math:`\\mu`, so
few runs suffice; more steps resolve more detail.

What is unbiased: for every polynomial :math:`p` of degree :math:`\\le 2m-1` the SLQ value of
:math:`\\int p\\, d\\mu` is exactly :math:`v^\\top p(A) v`, an unbiased estimate of
:math:`\\operatorname{tr}(p(A))/n` (moments, and the trace as :math:`n\\,\\alpha_1`). The
broadened density is a smoothed, biased picture of :math:`\\mu`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from flatkd.landscape.estimators.lanczos import LanczosRun, lanczos
from flatkd.landscape.estimators.probes import rademacher, seeded_generator
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.results import DensityEstimate
from flatkd.progress import ProgressFactory, no_progress


def quadrature(run: LanczosRun) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss quadrature nodes and weights (summing to 1) of one Lanczos run."""
    values, vectors = run.ritz()
    return values, vectors[0] ** 2


def density_from_runs(runs: Sequence[LanczosRun], *, dim: int, hvps: int) -> DensityEstimate:
    """The SLQ density of Lanczos runs started from unit random vectors."""
    rules = [quadrature(run) for run in runs]
    return DensityEstimate(tuple(n for n, _ in rules), tuple(w for _, w in rules), dim, hvps, "slq")


def slq_runs(
    op: LinearOperator,
    runs: int,
    steps: int,
    *,
    generator: torch.Generator,
    progress: ProgressFactory = no_progress,
) -> list[LanczosRun]:
    """``runs`` Lanczos runs of ``steps`` steps from independent Rademacher starts
    :math:`z/\\sqrt n`; each keeps only its start (``sqrt(n) * run.vectors[0]`` is the Rademacher
    vector), so memory holds one run's basis at a time."""
    if runs < 1 or steps < 1:
        raise ValueError(f"runs and steps must be >= 1, got {runs} and {steps}")
    starts = rademacher(op.dim, runs, generator=generator, dtype=op.dtype, device=op.device) / math.sqrt(op.dim)
    with progress(total=runs, desc="density (SLQ runs)") as bar:
        done = []
        for start in starts.T:
            done.append(lanczos(op, start, steps, keep_basis=False))
            bar.update(1)
    return done


def slq_density(
    op: LinearOperator,
    runs: int = 2,
    steps: int = 50,
    *,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> DensityEstimate:
    """SLQ density from ``runs`` Lanczos runs of ``steps`` products each (see module docstring).

    With as many steps as the dimension each run's quadrature rule is the spectrum itself: nodes
    at the eigenvalues, each with mass :math:`(v^\\top u_j)^2 = 1/n` for a Rademacher start, so
    every run's mass sums to 1 and the first moment is :math:`\\operatorname{tr}(A)/n`:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)))
    >>> density = slq_density(op, runs=2, steps=4)
    >>> [round(node, 6) for node in density.nodes[0].tolist()]
    [1.0, 2.0, 3.0, 4.0]
    >>> [round(weight, 6) for weight in density.weights[0].tolist()]
    [0.25, 0.25, 0.25, 0.25]
    >>> [round(float(weights.sum()), 6) for weights in density.weights], round(density.moment(1)[0], 6)
    ([1.0, 1.0], 2.5)
    """
    before = op.hvp_count
    done = slq_runs(op, runs, steps, generator=seeded_generator(seed, op.device), progress=progress)
    return density_from_runs(done, dim=op.dim, hvps=op.hvp_count - before)
