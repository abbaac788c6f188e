"""Reference backends: PyHessian and loss-landscapes, called for real on the same model and data.

flatkd's estimators are checked against, and benchmarked against, the two libraries people use.
The adapters run them unmodified (``pyhessian==0.1``, ``loss-landscapes==3.0.6`` from PyPI) on
the objective's model and fixed batches and return flatkd's result types, working around what
breaks on torch 2.13 and what they do to the model (DESIGN.md §5):

PyHessian (``pyhessian.hessian``):
  * needs ``cuda=False`` on CPU;
  * ``density()`` calls ``torch.eig``, removed from torch: for the call, ``torch.eig`` is supplied,
    computed with ``torch.linalg.eigh`` (the matrix is a symmetric tridiagonal) in the old output
    format (eigenvalues as ``n x 2`` real/imaginary columns, eigenvectors as columns);
  * ``trace()`` stops when ``abs(mean - previous) / (previous + 1e-6) < tol``, relative to the
    *signed* previous mean: a negative mean makes the left side negative, so it stops after 1-2
    probes at ``tol=1e-3`` and even a negative ``tol`` (e.g. -1) stops it once the mean turns
    negative and moves by more than its magnitude; ``tol=None`` here passes ``tol=-inf``, which no
    finite (or nan) left side is below, so it uses exactly ``probes`` probes;
  * it calls ``model.eval()`` and never restores the mode, and ``loss.backward(create_graph=True)``
    leaves graph-carrying ``.grad`` on every parameter (adding to any gradient already there, which
    would corrupt its Hessian): the adapter clears ``.grad`` before and restores gradients, mode
    flags and ``requires_grad`` afterwards;
  * its power iteration converges to the eigenvalue of largest *magnitude*, flatkd's Lanczos to the
    largest *algebraic* one: the adapter returns the largest algebraic eigenvalues too. When every
    value PyHessian finds is >= 0 they are the largest algebraic ones; when one is negative
    (:math:`\\mu < 0`, the most negative eigenvalue, since it outweighs some wanted positive one),
    PyHessian is run again on :math:`H - \\mu I` (its Hessian-vector products shifted by
    :math:`-\\mu v`), whose eigenvalues :math:`\\lambda_i - \\mu \\ge 0` put the largest algebraic
    ones first in magnitude, and :math:`\\mu` is added back; both runs' products are counted.
    (PyHessian normalises by ``norm + 1e-6``, so its Rayleigh quotients are low by about
    :math:`2 \\cdot 10^{-6}` relative; after the shift that bias is :math:`2 \\cdot 10^{-6}
    (\\lambda - \\mu)`, e.g. 7e-6 relative for eigenvalues 4 and -10);
  * it draws probes from the global RNG: each call runs under ``torch.random.fork_rng`` seeded with
    ``seed``, so the caller's RNG state is untouched and results repeat;
  * a parameter the loss does not use breaks its HVP (``0.`` placeholder gradients): such
    parameters, which flatkd leaves out of the space anyway, are frozen for the call;
  * Hessian-vector products are counted by wrapping ``pyhessian.hessian.hessian_vector_product``
    (one batch) or the instance's ``dataloader_hv_product`` (several).

loss-landscapes (``loss_landscapes.random_plane`` / ``random_line`` / ``linear_interpolation``):
  * it moves the model's parameters in place, sets ``requires_grad=False`` on all of them and never
    calls ``eval()`` (BatchNorm would use batch statistics and update its running ones): the adapter
    hands it a deep copy in eval mode, so the caller's model is never touched;
  * directions are uniform on [0, 1) (all positive), not Gaussian; they move every parameter,
    frozen ones, biases and BatchNorm affine parameters included (each element of a 1-D tensor by
    its own magnitude), where flatkd's directions leave 1-D tensors and frozen parameters alone;
  * its filter normalisation divides by zero on an all-zero filter or 1-D tensor, e.g. a freshly
    initialised BatchNorm bias: reported here as an error;
  * ``distance`` is inverted: the plane spans :math:`\\pm 1/(2\\,\\mathrm{distance})`
    filter-normalised units; the adapter passes ``distance = 1/(2 radius)``;
  * the plane's grid is not centred: the first axis is :math:`(i - s/2)h` for
    :math:`i = 0..s-1`, the second is shifted by one step on even columns, so with odd ``steps`` the
    centre is never evaluated; the line starts one step *after* the weights and goes one way only;
    the interpolation skips its start point. The adapter records each point's true coordinates.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import loss_landscapes
import numpy as np
import torch
from loss_landscapes.metrics import Metric

from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.modes import eval_mode
from flatkd.landscape.objective import Objective
from flatkd.landscape.results import DensityEstimate, EigenEstimate, TraceEstimate
from flatkd.landscape.surfaces.loss_surface import LossSurface

#: The module ``pyhessian.hessian`` (the package attribute of that name is the class).
pyhessian_module = importlib.import_module("pyhessian.hessian")


class PyHessianBackend:
    """PyHessian's ``hessian`` on the objective's model and batches, one fresh instance per call.

    The computation runs in the model's own dtype (PyHessian cannot change it).
    """

    def __init__(self, objective: Objective) -> None:
        model_dtype = objective.model.get_parameter(objective.space.names[0]).dtype
        if objective.dtype != model_dtype:
            raise LandscapeInputError(
                f"the pyhessian backend computes in the model's dtype ({model_dtype}); convert the model "
                f"(e.g. model.to({objective.dtype})) instead of passing dtype"
            )
        self.objective = objective
        self.hvp_count = 0

    def eigenvalues(self, top_k: int = 1, *, tol: float = 1e-3, max_iter: int = 100, seed: int = 0) -> EigenEstimate:
        """The ``top_k`` largest *algebraic* eigenvalues (descending) by
        ``hessian.eigenvalues(maxIter=max_iter, tol=tol, top_n=top_k)``, rerun on the shifted
        Hessian :math:`H - \\mu I` when its largest-magnitude values include a negative :math:`\\mu`
        (see the module docstring); ``hvps`` counts both runs."""
        values, hvps = self._power_iteration(top_k, tol, max_iter, seed, shift=0.0)
        if min(values) < 0:
            shift = -min(values)
            shifted, more = self._power_iteration(top_k, tol, max_iter, seed, shift=shift)
            values, hvps = [v - shift for v in shifted], hvps + more
        nan = (math.nan,) * len(values)
        return EigenEstimate(tuple(values), nan, nan, hvps, "pyhessian", True)

    def _power_iteration(
        self, top_k: int, tol: float, max_iter: int, seed: int, *, shift: float
    ) -> tuple[list[float], int]:
        """PyHessian's largest-magnitude eigenvalues of :math:`H + \\text{shift}\\,I` and the HVPs used."""
        with self._session(seed, shift=shift) as (engine, counter):
            values, _ = engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=top_k)
        return [float(v) for v in values], counter[0]

    def trace(self, probes: int = 100, *, tol: float | None = None, seed: int = 0) -> TraceEstimate:
        """``hessian.trace(maxIter=probes, tol=...)``; ``tol=None`` (passed as ``-inf``) forces exactly
        ``probes`` probes, whatever the sign of the running mean."""
        with self._session(seed) as (engine, counter):
            samples = engine.trace(maxIter=probes, tol=-math.inf if tol is None else tol)
        values = torch.tensor(samples, dtype=torch.float64)
        return TraceEstimate.from_samples(values, hvps=counter[0], method="pyhessian")

    def density(self, runs: int = 1, steps: int = 100, *, seed: int = 0) -> DensityEstimate:
        """``hessian.density(iter=steps, n_v=runs)`` with ``torch.eig`` supplied."""
        with self._session(seed) as (engine, counter), _torch_eig_from_eigh():
            nodes, weights = engine.density(iter=steps, n_v=runs)
        as_tensors = [torch.tensor(np.asarray(x, dtype=np.float64)) for x in (*nodes, *weights)]
        return DensityEstimate(
            tuple(as_tensors[:runs]), tuple(as_tensors[runs:]), self.objective.dim, counter[0], "pyhessian"
        )

    @contextlib.contextmanager
    def _session(self, seed: int, *, shift: float = 0.0) -> Iterator[tuple[Any, list[int]]]:
        """A PyHessian instance on the model, with HVPs counted (and, for ``shift`` :math:`\\ne 0`,
        turned into products with :math:`H + \\text{shift}\\,I`) and the model restored after."""
        objective = self.objective
        model = objective.model
        params = list(model.parameters())
        saved_grads = [p.grad for p in params]
        saved_flags = [p.requires_grad for p in params]
        used = {id(model.get_parameter(name)) for name in objective.space.names}
        counter = [0]
        plain_hvp = pyhessian_module.hessian_vector_product

        def counted_hvp(gradients: Any, parameters: Any, v: list[torch.Tensor]) -> Any:
            counter[0] += 1
            return _shifted(plain_hvp(gradients, parameters, v), v, shift)

        batches = [(b.inputs, b.targets) for b in objective.batches]
        try:
            with eval_mode(model), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                # its backward(create_graph=True) warns of a grad/graph cycle; .grad is reset below
                warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
                torch.manual_seed(seed)
                for p in params:
                    p.grad = None
                    p.requires_grad_(p.requires_grad and id(p) in used)
                pyhessian_module.hessian_vector_product = counted_hvp
                if len(batches) == 1:
                    engine = pyhessian_module.hessian(model, objective.criterion, data=batches[0], cuda=False)
                else:
                    engine = pyhessian_module.hessian(model, objective.criterion, dataloader=batches, cuda=False)
                    plain_loader_hvp = engine.dataloader_hv_product

                    def counted_loader_hvp(v: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
                        counter[0] += 1
                        _, product = plain_loader_hvp(v)
                        product = _shifted(product, v, shift)
                        return float(sum((p * x).sum() for p, x in zip(product, v))), product

                    engine.dataloader_hv_product = counted_loader_hvp
                yield engine, counter
        finally:
            self.hvp_count += counter[0]
            pyhessian_module.hessian_vector_product = plain_hvp
            for p, grad, flag in zip(params, saved_grads, saved_flags):
                p.grad = grad
                p.requires_grad_(flag)


def _shifted(product: Any, v: list[torch.Tensor], shift: float) -> Any:
    """PyHessian's per-parameter product :math:`Hv` as :math:`(H + \\text{shift}\\,I)v` (unchanged
    for ``shift == 0``)."""
    return product if shift == 0 else [p + shift * x for p, x in zip(product, v)]


@contextlib.contextmanager
def _torch_eig_from_eigh() -> Iterator[None]:
    """Provide the removed ``torch.eig(A, eigenvectors=True)`` for symmetric ``A`` for a block."""
    had = hasattr(torch, "eig")
    previous = getattr(torch, "eig", None)

    def eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eigh(matrix)
        pairs = torch.stack([values, torch.zeros_like(values)], dim=1)
        return pairs, vectors if eigenvectors else torch.empty(0)

    torch.eig = eig  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had:
            torch.eig = previous  # type: ignore[attr-defined]
        else:
            del torch.eig  # type: ignore[attr-defined]


class _SubsetMetric(Metric):
    """A loss-landscapes ``Metric``: (loss, accuracy) over the objective's batches, weighted by
    batch size (its own ``Loss`` metric takes one batch)."""

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective

    def __call__(self, model_wrapper: Any) -> tuple[float, float]:
        loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for batch in self.objective.batches:
                out = model_wrapper.forward(batch.inputs)
                loss += batch.weight * float(self.objective.criterion(out, batch.targets))
                if self.objective.classifier:
                    correct += int((out.argmax(dim=1) == batch.targets).sum())
                total += batch.targets.shape[0]
        return loss, correct / total


def _copy_for_loss_landscapes(objective: Objective) -> torch.nn.Module:
    """A deep copy of the model in eval mode, in the objective's dtype, at the objective's weights."""
    model = copy.deepcopy(objective.model).to(objective.dtype).eval()
    with torch.no_grad():
        for name, value in objective.space.unflatten(objective.theta).items():
            model.get_parameter(name).copy_(value)
    return model


_ZERO_FILTER = (
    "loss-landscapes cannot normalise this model's directions: its filter normalisation divides by zero on "
    "all-zero filters or 1-D tensors (e.g. a fresh BatchNorm bias); use the flatkd backend"
)


@contextlib.contextmanager
def _zero_division_as_input_error() -> Iterator[None]:
    try:
        yield
    except ZeroDivisionError:
        raise LandscapeInputError(_ZERO_FILTER) from None


def _surface(
    objective: Objective, kind: Any, points: np.ndarray, values: np.ndarray, settings: dict[str, Any]
) -> LossSurface:
    if np.isnan(values[..., 0]).any():
        raise LandscapeInputError(_ZERO_FILTER)
    accuracy = values[..., 1] if objective.classifier else None
    centre = objective.centre.loss
    settings = {"backend": "loss-landscapes", **settings}
    return LossSurface(kind, points, values[..., 0].astype(np.float64), accuracy, centre, settings)


def loss_landscapes_plane(objective: Objective, *, steps: int, radius: float, seed: int) -> LossSurface:
    """``loss_landscapes.random_plane`` (filter normalisation) over :math:`\\pm` ``radius``."""
    model = _copy_for_loss_landscapes(objective)
    with torch.random.fork_rng(devices=[]), _zero_division_as_input_error():
        torch.manual_seed(seed)
        values = np.asarray(
            loss_landscapes.random_plane(
                model, _SubsetMetric(objective), distance=1 / (2 * radius), steps=steps, normalization="filter"
            ),
            dtype=np.float64,
        )
    unit = 2 * radius / steps
    first = (np.arange(steps) - steps / 2) * unit
    second = np.array(
        [(np.arange(steps) + (1 if i % 2 == 0 else 0) - steps / 2) * unit for i in range(steps)]
    )
    points = np.stack([np.broadcast_to(first[:, None], (steps, steps)), second], axis=-1)
    return _surface(objective, "plane", points, values, {"steps": steps, "radius": radius, "seed": seed})


def loss_landscapes_line(objective: Objective, *, steps: int, radius: float, seed: int) -> LossSurface:
    """``loss_landscapes.random_line`` (filter normalisation): ``steps`` points from one step past
    the weights out to ``radius``, one side only."""
    model = _copy_for_loss_landscapes(objective)
    with torch.random.fork_rng(devices=[]), _zero_division_as_input_error():
        torch.manual_seed(seed)
        values = np.asarray(
            loss_landscapes.random_line(
                model, _SubsetMetric(objective), distance=1 / radius, steps=steps, normalization="filter"
            ),
            dtype=np.float64,
        )
    points = ((np.arange(steps) + 1) * radius / steps)[:, None]
    return _surface(objective, "line", points, values, {"steps": steps, "radius": radius, "seed": seed})


def loss_landscapes_interpolation(objective: Objective, theta_b: torch.Tensor, *, steps: int) -> LossSurface:
    """``loss_landscapes.linear_interpolation`` from the weights to ``theta_b``: ``t = 1/steps ..
    1`` (it skips ``t = 0``), moving parameters only (buffers stay the start model's)."""
    start = _copy_for_loss_landscapes(objective)
    end = copy.deepcopy(start)
    with torch.no_grad():
        for name, value in objective.space.unflatten(theta_b).items():
            end.get_parameter(name).copy_(value)
    values = np.asarray(
        loss_landscapes.linear_interpolation(start, end, _SubsetMetric(objective), steps=steps), dtype=np.float64
    )
    points = ((np.arange(steps) + 1) / steps)[:, None]
    return _surface(objective, "interpolation", points, values, {"steps": steps})
