"""``Hessian(model, criterion, data)``: the curvature of a trained network in one object.

>>> from flatkd.landscape import Hessian  # doctest: +SKIP
>>> hessian = Hessian(model, torch.nn.CrossEntropyLoss(), [(inputs, targets)])  # doctest: +SKIP
>>> hessian.eigenvalues(top_k=3).values  # doctest: +SKIP
>>> hessian.trace().value, hessian.trace().stderr  # doctest: +SKIP
>>> hessian.density().curve()  # doctest: +SKIP
>>> spectrum = hessian.spectrum()  # all three from shared Hessian-vector products  # doctest: +SKIP

Everything is measured at the model's weights when the object is made, in eval mode, on the
batches of ``data`` read once (see :mod:`.objective`); the model is never modified. Each method
draws its random vectors from its own ``seed``: same seed, same numbers. ``backend="pyhessian"``
runs PyHessian instead (:mod:`.reference`) and returns the same result types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.estimators.adaptive import adaptive_operator
from flatkd.landscape.estimators.hutchinson import hutchinson_trace
from flatkd.landscape.estimators.hutchpp import hutchpp_trace
from flatkd.landscape.estimators.lanczos_eigenvalues import lanczos_eigenvalues
from flatkd.landscape.estimators.power import power_eigenvalues
from flatkd.landscape.estimators.slq import slq_density
from flatkd.landscape.estimators.spectrum import shared_spectrum
from flatkd.landscape.hvp import HessianOperator
from flatkd.landscape.objective import Objective
from flatkd.landscape.results import DensityEstimate, EigenEstimate, SpectrumEstimate, TraceEstimate
from flatkd.progress import ProgressFactory, no_progress

Backend = Literal["flatkd", "pyhessian"]


class Hessian:
    """The Hessian of ``model``'s mean loss under ``criterion`` over the batches of ``data``.

    Args:
        model: the network; a multi-exit one wrapped in :class:`flatkd.landscape.SelectExit`.
        criterion: ``criterion(outputs, targets)`` -> scalar batch-mean loss.
        data: iterable of ``(inputs, targets)`` batches: a fixed, seeded subset.
        dtype: computation dtype (default: the parameters'); ``torch.float64`` for references.
        cache_graph: keep the double-backward graph between products (default: when ``data``
            is one batch; see :mod:`.hvp`).
        backend: ``"flatkd"`` or ``"pyhessian"``.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Any,
        data: Iterable[Any],
        *,
        dtype: torch.dtype | None = None,
        cache_graph: bool | None = None,
        backend: Backend = "flatkd",
    ) -> None:
        _check_backend(backend)
        self._attach(Objective(model, criterion, data, dtype=dtype), cache_graph, backend)

    @classmethod
    def of(cls, objective: Objective, *, cache_graph: bool | None = None, backend: Backend = "flatkd") -> Hessian:
        """The Hessian of an existing :class:`Objective`, e.g. the one a :class:`Surface` uses
        (one set of batches, checks and evaluation replica for both)."""
        _check_backend(backend)
        hessian = cls.__new__(cls)
        hessian._attach(objective, cache_graph, backend)
        return hessian

    def _attach(self, objective: Objective, cache_graph: bool | None, backend: Backend) -> None:
        self.objective = objective
        self.operator = HessianOperator(objective, cache_graph=cache_graph)
        self.backend = backend
        if backend == "pyhessian":
            from flatkd.landscape.reference import PyHessianBackend

            self._pyhessian = PyHessianBackend(objective)

    @property
    def dim(self) -> int:
        """Number of parameters the curvature is measured over."""
        return self.objective.dim

    @property
    def hvp_count(self) -> int:
        """Hessian-vector products made so far through this object."""
        return self._pyhessian.hvp_count if self.backend == "pyhessian" else self.operator.hvp_count

    def eigenvalues(
        self,
        top_k: int = 1,
        *,
        method: Literal["lanczos", "power"] = "lanczos",
        tol: float | None = None,
        max_steps: int = 100,
        seed: int = 0,
        progress: ProgressFactory = no_progress,
    ) -> EigenEstimate:
        """The ``top_k`` largest eigenvalues.

        ``method="lanczos"`` (default; largest algebraic, ``tol`` default 1e-6 on the relative
        residual bound) or ``"power"`` (PyHessian's power iteration: largest magnitude, ``tol``
        default 1e-3 on the relative change). ``max_steps`` caps products (per eigenvalue for
        power iteration). The pyhessian backend always uses power iteration.
        """
        if self.backend == "pyhessian":
            return self._pyhessian.eigenvalues(top_k, tol=1e-3 if tol is None else tol, max_iter=max_steps, seed=seed)
        if method == "lanczos":
            return lanczos_eigenvalues(
                self.operator, top_k, tol=1e-6 if tol is None else tol, max_steps=max_steps, seed=seed,
                progress=progress,
            )
        if method == "power":
            return power_eigenvalues(
                self.operator, top_k, tol=1e-3 if tol is None else tol, max_iter=max_steps, seed=seed, progress=progress
            )
        raise LandscapeInputError(f"unknown eigenvalue method {method!r}: use 'lanczos' or 'power'")

    def trace(
        self,
        *,
        method: Literal["hutch++", "hutchinson"] = "hutch++",
        hvps: int = 99,
        probes: torch.Tensor | None = None,
        seed: int = 0,
        progress: ProgressFactory = no_progress,
    ) -> TraceEstimate:
        """The trace, by Hutch++ (default) or Hutchinson, with a budget of ``hvps`` products.

        ``probes`` (``dim x m``) gives Hutchinson explicit probe vectors. The pyhessian backend
        runs its Hutchinson with exactly ``hvps`` probes.
        """
        if self.backend == "pyhessian":
            return self._pyhessian.trace(hvps, seed=seed)
        if method == "hutch++":
            return hutchpp_trace(self.operator, hvps, seed=seed, progress=progress)
        if method == "hutchinson":
            return hutchinson_trace(self.operator, hvps if probes is None else probes, seed=seed, progress=progress)
        raise LandscapeInputError(f"unknown trace method {method!r}: use 'hutch++' or 'hutchinson'")

    def density(
        self, *, runs: int = 2, steps: int = 50, seed: int = 0, progress: ProgressFactory = no_progress
    ) -> DensityEstimate:
        """The spectral density by SLQ: ``runs`` Lanczos runs of ``steps`` products each (the
        default spends PyHessian's 100 products on two runs, so the density has an error band)."""
        if self.backend == "pyhessian":
            return self._pyhessian.density(runs, steps, seed=seed)
        return slq_density(self.operator, runs, steps, seed=seed, progress=progress)

    def spectrum(
        self,
        *,
        top_k: int = 1,
        tol: float = 1e-6,
        runs: int = 3,
        steps: int = 16,
        probes: int = 5,
        seed: int = 0,
        adaptive: bool = False,
        progress: ProgressFactory = no_progress,
    ) -> SpectrumEstimate:
        """Top eigenvalues, trace and density from shared products (:mod:`.estimators.spectrum`).

        With the pyhessian backend: its three separate calls (power iteration; Hutchinson with
        ``runs * steps + probes`` probes; SLQ with ``runs`` runs of ``steps``), sharing nothing.
        ``adaptive`` measures the adaptive Hessian :math:`|\\theta| H |\\theta|` instead
        (:mod:`.estimators.adaptive`; reparametrisation-invariant), always with flatkd's shared
        estimator (PyHessian has no adaptive variant).
        """
        if self.backend == "pyhessian" and not adaptive:
            eigen = self._pyhessian.eigenvalues(top_k, seed=seed)
            trace = self._pyhessian.trace(runs * steps + probes, seed=seed)
            density = self._pyhessian.density(runs, steps, seed=seed)
            return SpectrumEstimate(eigen, trace, density, eigen.hvps + trace.hvps + density.hvps)
        operator = adaptive_operator(self.operator, self.objective.theta) if adaptive else self.operator
        return shared_spectrum(
            operator, top_k=top_k, tol=tol, runs=runs, steps=steps, probes=probes, seed=seed, progress=progress
        )


def _check_backend(backend: str) -> None:
    if backend not in ("flatkd", "pyhessian"):
        raise LandscapeInputError(f"unknown Hessian backend {backend!r}: use 'flatkd' or 'pyhessian'")
