"""Top eigenvalues, trace and spectral density from one shared set of Hessian-vector products.

PyHessian computes the three with separate calls that share nothing (power iteration, then
Hutchinson, then SLQ). Here every product serves more than one estimate:

1. **Run 1** is a Lanczos run (:mod:`.lanczos`) from a Rademacher start :math:`z_1/\\sqrt n`. It
   continues until the ``top_k`` largest Ritz values meet :mod:`.lanczos_eigenvalues`'s stopping rule
   and it has at least ``steps`` steps. Its Ritz values are the **top eigenvalues**; its
   quadrature rule is the first **SLQ** run; its Krylov basis :math:`Q_1` (which holds the
   extreme eigenvectors, the directions that dominate :math:`\\|A\\|_F`) is the **deflation
   basis** for the trace, with :math:`Q_1^\\top A Q_1 = T_1` known exactly.
2. **Runs 2..R** are SLQ runs of ``steps`` steps from independent Rademacher starts
   :math:`z_r/\\sqrt n`. Besides the density, each start is a trace probe independent of
   :math:`Q_1` whose product :math:`A z_r` is the run's first step: a free Hutchinson sample.
3. **Extra probes** (``probes``, one product each) add trace samples where the runs give too few.

Trace: with :math:`P = Q_1 Q_1^\\top`,

.. math:: \\widehat{\\operatorname{tr}} = \\operatorname{tr}(T_1) + \\frac{1}{p}\\sum_{i=1}^{p}
          z_i^\\top (I-P) A (I-P) z_i

over the :math:`p = R - 1 + \\text{probes}` probes independent of run 1 (:mod:`.deflation`). This
is Hutch++ (Meyer et al., SOSA 2021) with the Krylov space of the eigenvalue run as its sketch, as
in Krylov-aware trace estimation (Chen & Hallman, "Krylov-aware stochastic trace estimation",
SIMAX 2023). Conditional on run 1 the samples are i.i.d. with mean
:math:`\\operatorname{tr}((I-P)A(I-P)) = \\operatorname{tr}(A) - \\operatorname{tr}(T_1)`, so the
estimate is **unbiased** and its standard error is the samples' ``std / sqrt(p)`` (conditional on
run 1). Run 1's own start is not used as a trace sample: it lies in :math:`Q_1`.

Density: the SLQ rules of all R runs (:mod:`.slq`). Every run has at least ``steps`` steps, so
for degrees up to ``2 * steps - 1`` each run's moment is exactly :math:`v^\\top A^p v` of its
random start (run 1's adaptive length does not matter): those moments are unbiased.

Cost: ``steps_1 + (R - 1) * steps + probes`` products, where ``steps_1 >= steps`` is run 1's length.
"""

from __future__ import annotations

import math

import torch

from flatkd.landscape.estimators.deflation import deflated_quadratic_forms
from flatkd.landscape.estimators.lanczos import lanczos
from flatkd.landscape.estimators.lanczos_eigenvalues import eigen_from_run, top_k_converged
from flatkd.landscape.estimators.probes import rademacher, seeded_generator
from flatkd.landscape.estimators.slq import density_from_runs, slq_runs
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.results import SpectrumEstimate, TraceEstimate
from flatkd.progress import ProgressFactory, no_progress


def shared_spectrum(
    op: LinearOperator,
    *,
    top_k: int = 1,
    tol: float = 1e-6,
    runs: int = 3,
    steps: int = 16,
    probes: int = 5,
    max_steps: int = 200,
    seed: int = 0,
    progress: ProgressFactory = no_progress,
) -> SpectrumEstimate:
    """Top eigenvalues, trace and density of ``op`` from shared products (module docstring).

    Args:
        top_k, tol: eigenvalues wanted and the relative error target of run 1's stopping rule.
        runs: SLQ runs R (run 1 included), at least 1.
        steps: Lanczos steps per SLQ run (run 1 takes at least this many).
        probes: extra trace probes (one product each); ``runs - 1 + probes`` must be >= 2.
        max_steps: cap on run 1's length.
        seed: seeds every random vector.

    On a 3 x 3 matrix run 1's Krylov basis spans everything, so the trace is exact (all of it
    :math:`\\operatorname{tr}(T_1)`); the top eigenvalue is :math:`3 + \\sqrt 3`. The cost is
    run 1's 3 steps, run 2's 3 and the one extra probe:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> a = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> estimate = shared_spectrum(DenseOperator(a), runs=2, steps=3, probes=1)
    >>> round(estimate.eigen.values[0], 6), round(3 + 3**0.5, 6)
    (4.732051, 4.732051)
    >>> round(estimate.trace.value, 6), round(estimate.density.moment(1)[0], 6), estimate.hvps
    (9.0, 3.0, 7)
    """
    if top_k < 1 or runs < 1 or steps < 1 or probes < 0:
        raise ValueError("top_k, runs and steps must be >= 1 and probes >= 0")
    if runs - 1 + probes < 2:
        raise ValueError("the trace needs at least 2 samples: runs - 1 + probes must be >= 2")
    generator = seeded_generator(seed, op.device)
    before = op.hvp_count
    start = rademacher(op.dim, 1, generator=generator, dtype=op.dtype, device=op.device)[:, 0]
    first = lanczos(
        op,
        start,
        max(max_steps, steps),
        stop=top_k_converged(top_k, tol, min_steps=steps, dtype=op.dtype),
        progress=progress,
        desc="top eigenvalues + SLQ run 1",
    )
    eigen = eigen_from_run(first, top_k, tol, hvps=op.hvp_count - before)
    others = slq_runs(op, runs - 1, steps, generator=generator, progress=progress) if runs > 1 else []
    root = math.sqrt(op.dim)
    trace_probes = [root * run.vectors[0] for run in others]
    images = [root * run.first_image for run in others]
    extra = rademacher(op.dim, probes, generator=generator, dtype=op.dtype, device=op.device)
    with progress(total=probes, desc="trace probes") as bar:
        for z in extra.T:
            trace_probes.append(z)
            images.append(op.matvec(z))
            bar.update(1)
    samples = deflated_quadratic_forms(
        torch.stack(trace_probes, 1), torch.stack(images, 1), first.basis, first.tridiagonal()
    )
    total = op.hvp_count - before
    trace = TraceEstimate.from_samples(
        samples, hvps=total, method="deflated-slq", exact_part=float(first.alphas.sum())
    )
    density = density_from_runs([first, *others], dim=op.dim, hvps=total)
    return SpectrumEstimate(eigen=eigen, trace=trace, density=density, hvps=total)
