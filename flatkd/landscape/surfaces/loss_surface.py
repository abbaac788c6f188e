"""A loss surface: the grid, the loss and accuracy on it, and how it was made.

Grid points not yet evaluated hold NaN, so a partly computed surface can be saved, loaded and
finished later (:meth:`flatkd.landscape.Surface.plane` with ``resume=``). Files are safetensors
written atomically (:func:`flatkd.fileio.save_tensors`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from flatkd.errors import InputFileError
from flatkd.fileio import load_tensors, read_tensor_metadata, save_tensors

SurfaceKind = Literal["line", "plane", "interpolation"]


@dataclass(frozen=True)
class LossSurface:
    """Loss (and accuracy) on a 1-D or 2-D grid around, or through, the trained weights.

    Attributes:
        kind: ``"line"`` (one random direction), ``"plane"`` (two) or ``"interpolation"``
            (between two checkpoints).
        points: coordinates of every grid point, shape ``grid + (ndim,)``: multiples of the
            filter-normalised directions (line, plane) or the interpolation weight ``t``.
        loss: mean loss per grid point; NaN where not evaluated yet.
        accuracy: top-1 accuracy per grid point (classifiers), else ``None``.
        centre_loss: the loss at the trained weights (coordinates 0).
        settings: how the surface was made (backend, seed, radius, steps, ...), JSON-friendly.
    """

    kind: SurfaceKind
    points: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    accuracy: np.ndarray | None = field(repr=False)
    centre_loss: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not bool(np.isnan(self.loss).any())

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """The coordinates along each grid axis (for the regular grids flatkd makes)."""
        ndim = self.points.shape[-1]
        along = [tuple(slice(None) if k == axis else 0 for k in range(ndim)) for axis in range(ndim)]
        return tuple(self.points[(*index, axis)] for axis, index in enumerate(along))


def save_surface(path: str | os.PathLike[str], surface: LossSurface) -> None:
    """Write ``surface`` to ``path`` (safetensors, atomically)."""
    tensors = {"points": torch.from_numpy(surface.points), "loss": torch.from_numpy(surface.loss)}
    if surface.accuracy is not None:
        tensors["accuracy"] = torch.from_numpy(surface.accuracy)
    meta = {"kind": surface.kind, "centre_loss": repr(surface.centre_loss), "settings": json.dumps(surface.settings)}
    save_tensors(path, tensors, metadata=meta)


def load_surface(path: str | os.PathLike[str]) -> LossSurface:
    """Read a surface written by :func:`save_surface`."""
    tensors = load_tensors(path)
    meta = read_tensor_metadata(path)
    try:
        return LossSurface(
            kind=meta["kind"],  # type: ignore[arg-type]
            points=tensors["points"].numpy(),
            loss=tensors["loss"].numpy(),
            accuracy=tensors["accuracy"].numpy() if "accuracy" in tensors else None,
            centre_loss=float(meta["centre_loss"]),
            settings=json.loads(meta["settings"]),
        )
    except (KeyError, ValueError) as exc:
        raise InputFileError(f"{path}: not a loss-surface file ({exc})") from None
