"""The fixed data subset a flatness measurement is computed on.

Every estimator evaluates the same function, the mean loss over one fixed list of batches, many
times. A data loader that reshuffles or re-augments on each pass would change that function between
Hessian-vector products, so the batches are read once, checked and kept (on the parameters' device,
floating inputs in the measurement's dtype). Pass a small, seeded subset, e.g. a few hundred
validation samples; :func:`load_batches` keeps them all in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from flatkd.landscape.errors import LandscapeInputError


@dataclass(frozen=True)
class Batch:
    """One ``(inputs, targets)`` pair and its weight ``size / total`` in the subset's mean loss."""

    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float


def load_batches(data: Iterable[Any], *, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    """Read ``data`` (an iterable of ``(inputs, targets)`` pairs) once into a list of batches.

    Inputs and targets must be tensors with the same leading (batch) size. Floating tensors are
    cast to ``dtype``; integer targets (class labels) keep their type. Each batch's weight is its
    share of the samples, so ``sum(weight * batch_mean_loss)`` is the mean loss over the subset.
    """
    pairs = []
    for index, item in enumerate(data):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise LandscapeInputError(
                f"data item {index} is not an (inputs, targets) pair: got {type(item).__name__}"
            )
        inputs, targets = item
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise LandscapeInputError(
                f"data item {index}: inputs and targets must be tensors, got "
                f"{type(inputs).__name__} and {type(targets).__name__}"
            )
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            raise LandscapeInputError(
                f"data item {index}: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} "
                "do not have the same batch size"
            )
        if inputs.shape[0] == 0:
            raise LandscapeInputError(f"data item {index} is an empty batch")
        pairs.append((_to(inputs, dtype, device), _to(targets, dtype, device)))
    if not pairs:
        raise LandscapeInputError("the data iterable is empty: pass at least one (inputs, targets) batch")
    total = sum(x.shape[0] for x, _ in pairs)
    return [Batch(x, y, x.shape[0] / total) for x, y in pairs]


def _to(tensor: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if tensor.is_floating_point():
        return tensor.to(device=device, dtype=dtype)
    return tensor.to(device)
