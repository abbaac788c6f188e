"""Loss surfaces around the trained weights: random lines, planes, and checkpoint interpolation.

* **line** (1-D): :math:`L(\\theta + \\alpha d)` for a filter-normalised random direction
  :math:`d` (:mod:`.directions`), :math:`\\alpha` on a symmetric grid in :math:`[-r, r]`.
* **plane** (2-D): :math:`L(\\theta + \\alpha d_1 + \\beta d_2)` with two independent such
  directions (nearly orthogonal in high dimension, as in Li et al. 2018), on a symmetric
  ``steps x steps`` grid. ``steps`` is odd, so the grid contains :math:`(0, 0)` and that point is
  evaluated at exactly the trained weights (:math:`\\theta + 0 d_1 + 0 d_2 = \\theta`): the centre
  value is the model's loss. (loss-landscapes' ``random_plane`` never evaluates the centre; see
  :mod:`flatkd.landscape.reference`.)
* **interpolation** (1-D): :math:`L((1-t)\\theta_a + t\\theta_b)` between two checkpoints
  (Goodfellow, Vinyals & Saxe, "Qualitatively characterizing neural network optimization
  problems", ICLR 2015). Frozen parameters and floating buffers (BatchNorm statistics) are
  interpolated the same way, so :math:`t = 0` and :math:`t = 1` reproduce both checkpoints' losses
  exactly; integer buffers come from :math:`\\theta_a`.

Every point is evaluated in eval mode on the fixed subset, loss and accuracy from one forward per
batch. Points are evaluated one by one: batching several grid points into one pass with
``torch.func.vmap`` was 1.1-2.2x *slower* per point than a loop on CPU (measured on the benchmark
CNN at 16x16 and 32x32 inputs), so it is not offered. The evaluator (:meth:`Objective.evaluate`)
runs convolutional models channels-last: a 21x21 plane took 1.5-2.1x less time than in the default
layout on both shapes of ``benchmarks/landscape.py`` (the plain BN CNN and ``cpu-tiny`` MV at exit
0; interleaved rounds), with losses equal to 1.1e-7 relative. Evaluation is chunked for resumability:
after every ``chunk`` points ``checkpoint(partial)`` is called with the surface so far (NaN where
pending), and ``resume=`` continues such a partial surface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.estimators.probes import seeded_generator
from flatkd.landscape.objective import Objective
from flatkd.landscape.surfaces.directions import BiasBN, filter_normalized_direction
from flatkd.landscape.surfaces.loss_surface import LossSurface, SurfaceKind
from flatkd.landscape.surfaces.sharpness import EpsilonSharpness, epsilon_sharpness
from flatkd.progress import ProgressFactory, no_progress

Checkpoint = Callable[[LossSurface], None]
SurfaceBackend = Literal["flatkd", "loss-landscapes"]


class Surface:
    """Loss surfaces of ``model`` under ``criterion`` on the batches of ``data``.

    >>> surface = Surface(model, torch.nn.CrossEntropyLoss(), [(x, y)])  # doctest: +SKIP
    >>> plane = surface.plane(steps=21, radius=1.0)  # doctest: +SKIP
    >>> plane.loss[10, 10] == plane.centre_loss  # doctest: +SKIP
    True

    Args:
        model, criterion, data: as for :class:`flatkd.landscape.Hessian`.
        dtype: computation dtype (default: the parameters').
        backend: ``"flatkd"`` or ``"loss-landscapes"`` (the reference implementation, with its
            quirks, see :mod:`flatkd.landscape.reference`; it takes ``steps``, ``radius`` and ``seed`` and ignores
            ``biasbn``, ``chunk``, ``checkpoint``, ``resume`` and ``span``).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Any,
        data: Iterable[Any],
        *,
        dtype: torch.dtype | None = None,
        backend: SurfaceBackend = "flatkd",
    ) -> None:
        _check_backend(backend)
        self.objective = Objective(model, criterion, data, dtype=dtype)
        self.backend = backend

    @classmethod
    def of(cls, objective: Objective, *, backend: SurfaceBackend = "flatkd") -> Surface:
        """Surfaces of an existing :class:`Objective`, e.g. the one a :class:`Hessian` measures
        (one set of batches, checks and evaluation replica for both)."""
        _check_backend(backend)
        surface = cls.__new__(cls)
        surface.objective, surface.backend = objective, backend
        return surface

    def line(
        self,
        *,
        steps: int = 51,
        radius: float = 1.0,
        seed: int = 0,
        biasbn: BiasBN = "zero",
        chunk: int = 16,
        checkpoint: Checkpoint | None = None,
        resume: LossSurface | None = None,
        progress: ProgressFactory = no_progress,
    ) -> LossSurface:
        """Loss along one filter-normalised random direction, :math:`\\alpha \\in [-r, r]`."""
        if self.backend == "loss-landscapes":
            from flatkd.landscape.reference import loss_landscapes_line

            return loss_landscapes_line(self.objective, steps=steps, radius=radius, seed=seed)
        axis = _symmetric_axis(steps, radius)
        generator = seeded_generator(seed, self.objective.device)
        d = filter_normalized_direction(self.objective.space, self.objective.theta, generator=generator, biasbn=biasbn)
        settings = dict(backend="flatkd", steps=steps, radius=radius, seed=seed, biasbn=biasbn)
        surface = self._blank("line", axis[:, None], settings, resume)
        theta = self.objective.theta
        return self._fill(
            surface, lambda p: (torch.add(theta, d, alpha=float(p[0])), None), chunk, checkpoint, progress
        )

    def plane(
        self,
        *,
        steps: int = 21,
        radius: float = 1.0,
        seed: int = 0,
        biasbn: BiasBN = "zero",
        chunk: int = 21,
        checkpoint: Checkpoint | None = None,
        resume: LossSurface | None = None,
        progress: ProgressFactory = no_progress,
    ) -> LossSurface:
        """Loss on the plane of two filter-normalised random directions, centred on the weights."""
        if self.backend == "loss-landscapes":
            from flatkd.landscape.reference import loss_landscapes_plane

            return loss_landscapes_plane(self.objective, steps=steps, radius=radius, seed=seed)
        axis = _symmetric_axis(steps, radius)
        generator = seeded_generator(seed, self.objective.device)
        space, theta = self.objective.space, self.objective.theta
        d1 = filter_normalized_direction(space, theta, generator=generator, biasbn=biasbn)
        d2 = filter_normalized_direction(space, theta, generator=generator, biasbn=biasbn)
        points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
        settings = dict(backend="flatkd", steps=steps, radius=radius, seed=seed, biasbn=biasbn)
        surface = self._blank("plane", points, settings, resume)

        def at(p: np.ndarray) -> tuple[torch.Tensor, None]:
            return torch.add(theta, d1, alpha=float(p[0])).add_(d2, alpha=float(p[1])), None

        return self._fill(surface, at, chunk, checkpoint, progress)

    def interpolation(
        self,
        other: nn.Module | Mapping[str, torch.Tensor],
        *,
        steps: int = 21,
        span: tuple[float, float] = (0.0, 1.0),
        progress: ProgressFactory = no_progress,
    ) -> LossSurface:
        """Loss on the segment from the model's weights (:math:`t=0`) to ``other``'s (:math:`t=1`).

        ``other`` is a model of the same architecture or its ``state_dict``; ``span`` may extend
        beyond [0, 1].
        """
        if steps < 2:
            raise LandscapeInputError(f"an interpolation needs at least 2 steps, got {steps}")
        objective = self.objective
        end = _checkpoint_tensors(other)
        theta_b = objective.space.flatten(_take(end, objective.space.names, objective, required=True))
        constants_b = {**objective.constants, **_take(end, objective.constants, objective, required=False)}
        if self.backend == "loss-landscapes":
            from flatkd.landscape.reference import loss_landscapes_interpolation

            return loss_landscapes_interpolation(objective, theta_b, steps=steps)
        ts = np.linspace(span[0], span[1], steps)
        settings = dict(backend="flatkd", steps=steps, span=list(span))
        surface = self._blank("interpolation", ts[:, None], settings, None)

        def at(p: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            t = float(p[0])
            constants = {
                name: (1 - t) * value + t * constants_b[name] if value.is_floating_point() else value
                for name, value in objective.constants.items()
            }
            return (1 - t) * objective.theta + t * theta_b, constants

        return self._fill(surface, at, steps, None, progress)

    def epsilon_sharpness(
        self, epsilon: float = 1e-3, *, steps: int = 10, step_size: float = 0.5, progress: ProgressFactory = no_progress
    ) -> EpsilonSharpness:
        """Keskar et al.'s epsilon-sharpness at the weights (:mod:`.sharpness`)."""
        return epsilon_sharpness(self.objective, epsilon, steps=steps, step_size=step_size, progress=progress)

    def _blank(
        self, kind: SurfaceKind, points: np.ndarray, settings: dict[str, Any], resume: LossSurface | None
    ) -> LossSurface:
        """An all-pending surface on ``points``, or ``resume`` if it was made the same way."""
        if resume is not None:
            if resume.kind != kind or resume.settings != settings or resume.points.shape != points.shape:
                raise LandscapeInputError(
                    f"cannot resume: the saved {resume.kind} surface was made with {resume.settings}, "
                    f"this one with {settings}; delete the saved surface to start over"
                )
            return resume
        grid = points.shape[:-1]
        accuracy = np.full(grid, np.nan) if self.objective.classifier else None
        return LossSurface(kind, points, np.full(grid, np.nan), accuracy, self.objective.centre.loss, settings)

    def _fill(
        self,
        surface: LossSurface,
        at: Callable[[np.ndarray], tuple[torch.Tensor, dict[str, torch.Tensor] | None]],
        chunk: int,
        checkpoint: Checkpoint | None,
        progress: ProgressFactory,
    ) -> LossSurface:
        """Evaluate every pending point of ``surface``; report a partial result every ``chunk``."""
        loss = surface.loss.copy()
        accuracy = None if surface.accuracy is None else surface.accuracy.copy()
        pending = list(zip(*np.nonzero(np.isnan(loss))))
        with progress(total=len(pending), desc=f"{surface.kind} surface") as bar:
            for count, index in enumerate(pending, start=1):
                result = self.objective.evaluate(*at(surface.points[index]))
                loss[index] = result.loss
                if accuracy is not None:
                    accuracy[index] = result.accuracy
                bar.update(1)
                if checkpoint is not None and (count % chunk == 0 or count == len(pending)):
                    partial_accuracy = None if accuracy is None else accuracy.copy()
                    checkpoint(replace(surface, loss=loss.copy(), accuracy=partial_accuracy))
        return replace(surface, loss=loss, accuracy=accuracy)


def _check_backend(backend: str) -> None:
    if backend not in ("flatkd", "loss-landscapes"):
        raise LandscapeInputError(f"unknown surface backend {backend!r}: use 'flatkd' or 'loss-landscapes'")


def _symmetric_axis(steps: int, radius: float) -> np.ndarray:
    """``steps`` (odd) equally spaced coordinates in [-radius, radius] with an exact 0 in the middle."""
    if steps < 3 or steps % 2 == 0:
        raise LandscapeInputError(f"steps must be odd and >= 3 (so the grid has a centre), got {steps}")
    if not radius > 0:
        raise LandscapeInputError(f"radius must be positive, got {radius}")
    half = steps // 2
    return (np.arange(steps) - half) * (radius / half)


def _checkpoint_tensors(other: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(other, nn.Module):
        return dict(other.state_dict(keep_vars=False))
    if isinstance(other, Mapping):
        return other
    raise LandscapeInputError(f"the other checkpoint must be a model or a state_dict, got {type(other).__name__}")


def _take(
    tensors: Mapping[str, torch.Tensor], names: Iterable[str], objective: Objective, *, required: bool
) -> dict[str, torch.Tensor]:
    """``tensors[name]`` for each name present (all of them if ``required``), detached, on the
    objective's device, floating ones in its dtype, shapes checked against the objective's."""
    reference = {**objective.space.unflatten(objective.theta), **objective.constants}
    taken = {}
    for name in names:
        if name not in tensors:
            if required:
                raise LandscapeInputError(f"the other checkpoint has no parameter {name!r}: not the same architecture")
            continue
        value = tensors[name].detach().to(objective.device)
        if value.shape != reference[name].shape:
            raise LandscapeInputError(
                f"{name!r} has shape {tuple(value.shape)} in the other checkpoint and "
                f"{tuple(reference[name].shape)} here: not the same architecture"
            )
        taken[name] = value.to(objective.dtype) if value.is_floating_point() else value
    return taken
