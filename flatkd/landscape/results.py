"""What the spectral estimators return: a value, its uncertainty, and the HVPs it cost.

All estimates are plain frozen dataclasses. :meth:`summary` gives the JSON/CSV-friendly numbers
(no tensors), which is what result files store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class EigenEstimate:
    """Largest eigenvalues (descending for Lanczos; in the order found for power iteration).

    Attributes:
        values: the estimates (Ritz values / Rayleigh quotients).
        errors: the estimator's error estimate per value (what its stopping rule tests): for
            Lanczos the residual bound (some eigenvalue lies within it), for power iteration only
            its last relative change, ``nan`` for PyHessian. A numerical bound, not an uncertainty.
        residuals: :math:`\\|A u - \\theta u\\|` for each unit estimate vector :math:`u`: some
            eigenvalue of :math:`A` lies within this distance of the value (a rigorous bound).
        hvps: operator products used.
        method: ``"lanczos"`` or ``"power"`` (or a reference backend's name).
        converged: whether every value met the stopping rule within the step limit.
        vectors: unit estimate vectors as columns (``dim x k``); not part of :meth:`summary`.
    """

    values: tuple[float, ...]
    errors: tuple[float, ...]
    residuals: tuple[float, ...]
    hvps: int
    method: str
    converged: bool
    vectors: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "values": list(self.values),
            "errors": list(self.errors),
            "residuals": list(self.residuals),
            "hvps": self.hvps,
            "converged": self.converged,
        }


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic trace estimate.

    Attributes:
        value: the estimate of :math:`\\operatorname{tr}(A)`.
        stderr: its standard error, ``std(samples, ddof=1) / sqrt(len(samples))`` (conditional
            on the deflation basis for deflated estimators; ``nan`` with fewer than two samples).
        hvps: operator products used.
        method: ``"hutchinson"``, ``"hutch++"``, ``"deflated-slq"`` or a reference's name.
        samples: the per-probe quadratic forms whose mean is the stochastic part.
        exact_part: the part computed exactly on a deflation subspace (0 for plain Hutchinson);
            ``value = exact_part + mean(samples)``.
    """

    value: float
    stderr: float
    hvps: int
    method: str
    samples: tuple[float, ...] = field(repr=False)
    exact_part: float = 0.0

    @classmethod
    def from_samples(
        cls, samples: torch.Tensor, *, hvps: int, method: str, exact_part: float = 0.0
    ) -> TraceEstimate:
        """``exact_part + mean(samples)`` with the standard error of the mean."""
        values = samples.detach().double().cpu()
        stderr = float(values.std(unbiased=True) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        return cls(exact_part + float(values.mean()), stderr, hvps, method, tuple(values.tolist()), exact_part)

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "value": self.value,
            "stderr": self.stderr,
            "hvps": self.hvps,
            "probes": len(self.samples),
        }


@dataclass(frozen=True)
class DensityCurve:
    """A spectral density sampled on a grid, with a pointwise standard error over the runs."""

    grid: np.ndarray
    density: np.ndarray
    stderr: np.ndarray
    sigma: float


@dataclass(frozen=True)
class DensityEstimate:
    """A spectral density as a mixture of point masses, one Gauss quadrature rule per run.

    Run :math:`r` gives nodes :math:`\\theta_{r,i}` and weights :math:`\\tau_{r,i}^2` summing to 1;
    the estimate of the spectral measure :math:`\\frac{1}{n}\\sum_j \\delta_{\\lambda_j}` is their
    average over runs (stochastic Lanczos quadrature, see :mod:`.estimators.slq`).

    Attributes:
        nodes, weights: one 1-D float64 tensor per run.
        dim: the operator's dimension :math:`n`.
        hvps: operator products used.
        method: ``"slq"`` or a reference backend's name.
    """

    nodes: tuple[torch.Tensor, ...] = field(repr=False)
    weights: tuple[torch.Tensor, ...] = field(repr=False)
    dim: int
    hvps: int
    method: str

    @property
    def runs(self) -> int:
        return len(self.nodes)

    def moment(self, power: int) -> tuple[float, float]:
        """Estimate of :math:`\\operatorname{tr}(A^p)/n` and its standard error over the runs.

        A run of :math:`m` Lanczos steps integrates polynomials of degree :math:`\\le 2m-1` exactly,
        so for those powers each run's value is exactly :math:`v^\\top A^p v` of its unit start
        vector, an unbiased estimate of :math:`\\operatorname{tr}(A^p)/n`.
        """
        per_run = torch.stack([(w * t**power).sum() for t, w in zip(self.nodes, self.weights)])
        stderr = float(per_run.std(unbiased=True)) / math.sqrt(self.runs) if self.runs > 1 else math.nan
        return float(per_run.mean()), stderr

    def curve(self, *, sigma: float | None = None, points: int = 1000, grid: np.ndarray | None = None) -> DensityCurve:
        """The Gaussian-broadened density :math:`\\phi_\\sigma(t) = \\frac{1}{R}\\sum_r \\sum_i
        \\tau_{r,i}^2\\, \\mathcal{N}(t;\\, \\theta_{r,i}, \\sigma^2)` (Lin, Saad & Yang, "Approximating
        spectral densities of large matrices", SIAM Review 2016, §3; Ghorbani, Krishnan & Xiao,
        ICML 2019, §2).

        ``sigma`` defaults to 1% of the node range (at least 1e-12); the default grid spans the
        nodes plus five ``sigma`` on each side with ``points`` points, so the curve integrates to 1
        up to the grid's resolution. ``stderr`` is the pointwise spread over runs / sqrt(runs).
        """
        everything = torch.cat(self.nodes)
        low, high = float(everything.min()), float(everything.max())
        if sigma is None:
            sigma = max(0.01 * (high - low), 1e-12)
        if grid is None:
            grid = np.linspace(low - 5 * sigma, high + 5 * sigma, points)
        t = torch.as_tensor(grid, dtype=torch.float64)
        per_run = torch.stack(
            [
                (w[None, :] * torch.exp(-0.5 * ((t[:, None] - n[None, :]) / sigma) ** 2)).sum(1)
                / (sigma * math.sqrt(2 * math.pi))
                for n, w in zip(self.nodes, self.weights)
            ]
        )
        stderr = per_run.std(0, unbiased=True) / math.sqrt(self.runs) if self.runs > 1 else torch.full_like(t, math.nan)
        return DensityCurve(np.asarray(grid), per_run.mean(0).numpy(), stderr.numpy(), sigma)

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "runs": self.runs, "hvps": self.hvps}


@dataclass(frozen=True)
class SpectrumEstimate:
    """Top eigenvalues, trace and density from one call, and the HVPs they cost together."""

    eigen: EigenEstimate
    trace: TraceEstimate
    density: DensityEstimate
    hvps: int

    def summary(self) -> dict[str, Any]:
        return {
            "eigen": self.eigen.summary(),
            "trace": self.trace.summary(),
            "density": self.density.summary(),
            "hvps": self.hvps,
        }
