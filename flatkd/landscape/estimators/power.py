"""Largest-magnitude eigenvalues by power iteration with deflation (PyHessian's method).

Power iteration (von Mises 1929; Golub & Van Loan, *Matrix Computations*, §7.3) repeats
:math:`v \\leftarrow A v / \\|A v\\|`; the Rayleigh quotient :math:`\\lambda = v^\\top A v`
converges to the eigenvalue of largest *magnitude* at the rate
:math:`|\\lambda_2/\\lambda_1|` per product (squared for the Rayleigh quotient), so a negative
eigenvalue of large magnitude wins over a smaller positive one. Further eigenvalues come from
deflation by projection: before each product :math:`v` is orthogonalised against the eigenvectors
already found. This reproduces PyHessian (Yao et al., "PyHessian: Neural networks through the lens
of the Hessian", IEEE BigData 2020; ``pyhessian/hessian.py``), including its stopping rule

.. math:: |\\lambda_t - \\lambda_{t-1}| \\,/\\, (|\\lambda_{t-1}| + 10^{-6}) < \\mathrm{tol}
          \\quad (\\mathrm{tol} = 10^{-3},\\ \\text{at most 100 products per eigenvalue}),

which measures progress, not error: slow convergence (close :math:`\\lambda_2/\\lambda_1`) stops
it early, far from the eigenvalue. Each value is reported with its Rayleigh quotient residual
:math:`\\|A v - \\lambda v\\|` (some eigenvalue lies within it; no extra product needed) and, as
``errors``, the last change the rule tested.
"""

from __future__ import annotations

import math

import torch

from flatkd.landscape.estimators.probes import gaussian, seeded_generator
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.results import EigenEstimate
from flatkd.progress import ProgressFactory, no_progress


def power_eigenvalues(
    op: LinearOperator,
    top_k: int = 1,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> EigenEstimate:
    """The ``top_k`` eigenvalues of largest magnitude by deflated power iteration, in the order
    found.

    Args:
        top_k: how many eigenvalues.
        tol: PyHessian's relative-change threshold.
        max_iter: at most this many products per eigenvalue.
        seed: seeds the Gaussian start vectors.

    The eigenvalue of largest magnitude wins, negative or not; PyHessian's default ``tol`` stops
    on slow progress, a tight one gets the eigenvalues to many digits:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> op = DenseOperator(torch.diag(torch.tensor([-5.0, 3.0, 1.0], dtype=torch.float64)))
    >>> round(power_eigenvalues(op).values[0], 2)
    -5.0
    >>> estimate = power_eigenvalues(op, top_k=2, tol=1e-10, max_iter=200)
    >>> [round(value, 6) for value in estimate.values], estimate.converged
    ([-5.0, 3.0], True)
    """
    if top_k < 1 or max_iter < 1:
        raise ValueError(f"top_k and max_iter must be >= 1, got {top_k} and {max_iter}")
    generator = seeded_generator(seed, op.device)
    before = op.hvp_count
    found: list[torch.Tensor] = []
    values, errors, residuals = [], [], []
    converged = True
    with progress(total=top_k * max_iter, desc="power iteration") as bar:
        for _ in range(top_k):
            v = gaussian(op.dim, generator=generator, dtype=op.dtype, device=op.device)
            previous, change, done = math.nan, math.inf, False
            for _ in range(max_iter):
                for u in found:
                    v = v - torch.dot(u, v) * u
                unit = v / torch.linalg.vector_norm(v)
                v = op.matvec(unit)
                bar.update(1)
                value = float(torch.dot(unit, v))
                residual = float(torch.linalg.vector_norm(v - value * unit))
                if not math.isnan(previous):
                    change = abs(value - previous)
                    if change / (abs(previous) + 1e-6) < tol:
                        done = True
                        break
                previous = value
            converged = converged and done
            found.append(unit)
            values.append(value)
            errors.append(change)
            residuals.append(residual)
    return EigenEstimate(
        values=tuple(values),
        errors=tuple(errors),
        residuals=tuple(residuals),
        hvps=op.hvp_count - before,
        method="power",
        converged=converged,
        vectors=torch.stack(found, dim=1),
    )
