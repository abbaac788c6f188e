"""Trace by Hutch++: exact on a sketched top subspace, Hutchinson on the rest.

Hutch++ (Meyer, Musco, Musco & Woodruff, "Hutch++: Optimal stochastic trace estimation", SOSA
2021, Algorithm 1) spends a budget of :math:`m` products in three equal parts: a Rademacher sketch
:math:`S` (:math:`s` columns), :math:`Q = \\operatorname{orth}(AS)`; the exact trace
:math:`\\operatorname{tr}(Q^\\top A Q)` (:math:`s` products); and Hutchinson with :math:`g` fresh
Rademacher probes on :math:`(I-P)A(I-P)` (see :mod:`.deflation`):

.. math:: \\widehat{\\operatorname{tr}} = \\operatorname{tr}(Q^\\top A Q)
          + \\frac{1}{g}\\sum_{i=1}^g z_i^\\top (I-P)A(I-P) z_i .

It is unbiased (the probes are independent of :math:`Q`), and because :math:`AS` captures the top
of the spectrum its variance is :math:`2\\|(I-P)A(I-P)\\|_F^2` at most, which reaches relative
error :math:`\\varepsilon` in :math:`O(1/\\varepsilon)` products instead of Hutchinson's
:math:`O(1/\\varepsilon^2)` (for positive semi-definite :math:`A`). The reported standard error is
that of the Hutchinson part, conditional on the sketch.
"""

from __future__ import annotations

import torch

from flatkd.landscape.estimators.deflation import deflated_quadratic_forms
from flatkd.landscape.estimators.probes import rademacher, seeded_generator
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.results import TraceEstimate
from flatkd.progress import ProgressFactory, no_progress


def hutchpp_trace(
    op: LinearOperator,
    hvps: int = 99,
    *,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> TraceEstimate:
    """Hutch++ with a budget of ``hvps`` products (at least 3): ``hvps // 3`` sketch columns, the
    rest Hutchinson probes.

    A sketch as wide as the operator spans everything: the trace is then all exact part, and
    the Hutchinson samples on the (empty) rest vanish to rounding:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> a = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> estimate = hutchpp_trace(DenseOperator(a), hvps=9)
    >>> round(estimate.value, 6), round(estimate.exact_part, 6), estimate.hvps
    (9.0, 9.0, 9)
    """
    if hvps < 3:
        raise ValueError(f"hutch++ needs a budget of at least 3 products, got {hvps}")
    sketch = min(hvps // 3, op.dim)
    count = hvps - 2 * sketch
    generator = seeded_generator(seed, op.device)
    draw = dict(generator=generator, dtype=op.dtype, device=op.device)
    before = op.hvp_count
    with progress(total=hvps, desc="hutch++ trace") as bar:
        basis, _ = torch.linalg.qr(op.matmat(rademacher(op.dim, sketch, **draw), bar=bar))
        projected = basis.T @ op.matmat(basis, bar=bar)
        probes = rademacher(op.dim, count, **draw)
        samples = deflated_quadratic_forms(probes, op.matmat(probes, bar=bar), basis, (projected + projected.T) / 2)
    return TraceEstimate.from_samples(
        samples, hvps=op.hvp_count - before, method="hutch++", exact_part=float(torch.trace(projected.double()))
    )

