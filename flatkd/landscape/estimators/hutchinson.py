"""Trace by Hutchinson's estimator with Rademacher probes.

For probes :math:`z_1..z_m` with independent :math:`\\pm 1` entries (Hutchinson, "A stochastic
estimator of the trace of the influence matrix for Laplacian smoothing splines", 1990),

.. math:: \\widehat{\\operatorname{tr}}(A) = \\frac{1}{m}\\sum_{i=1}^m z_i^\\top A z_i,
          \\qquad E = \\operatorname{tr}(A),\\quad
          \\operatorname{Var}(z^\\top A z) = 2\\Big(\\|A\\|_F^2 - \\sum_j A_{jj}^2\\Big),

unbiased, with standard error estimated by the sample standard deviation over
:math:`\\sqrt m`. This is PyHessian's ``trace()`` (without its early stop); passing PyHessian's own
probe vectors reproduces its numbers.
"""

from __future__ import annotations

import torch

from flatkd.landscape.estimators.probes import rademacher, seeded_generator
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.results import TraceEstimate
from flatkd.progress import ProgressFactory, no_progress


def hutchinson_trace(
    op: LinearOperator,
    probes: int | torch.Tensor = 100,
    *,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> TraceEstimate:
    """Hutchinson's trace estimate from ``probes`` Rademacher vectors (one product each).

    ``probes`` is a count, or an explicit ``dim x m`` matrix of probe vectors.

    Random probes give an estimate with a standard error; probes whose outer products average to
    the identity (here three rows of a 4 x 4 Hadamard matrix: :math:`ZZ^\\top = 4I`) give the
    trace exactly:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> a = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> estimate = hutchinson_trace(DenseOperator(a), probes=4, seed=0)
    >>> round(estimate.value, 2), round(estimate.stderr, 2), estimate.hvps
    (10.0, 1.91, 4)
    >>> hadamard = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1]], dtype=torch.float64)
    >>> hutchinson_trace(DenseOperator(a), probes=hadamard).value
    9.0
    """
    if isinstance(probes, int):
        if probes < 1:
            raise ValueError(f"probes must be >= 1, got {probes}")
        generator = seeded_generator(seed, op.device)
        probes = rademacher(op.dim, probes, generator=generator, dtype=op.dtype, device=op.device)
    before = op.hvp_count
    with progress(total=probes.shape[1], desc="hutchinson trace") as bar:
        images = op.matmat(probes, bar=bar)
    samples = (probes.double() * images.double()).sum(0)
    return TraceEstimate.from_samples(samples, hvps=op.hvp_count - before, method="hutchinson")
