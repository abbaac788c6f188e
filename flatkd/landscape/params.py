"""The trainable parameters of a model as one flat vector.

Curvature and surfaces live in the space of the model's *trainable* parameters (those with
``requires_grad=True``; a frozen backbone's weights are constants). :class:`ParameterSpace` fixes an
order of those tensors and converts between one flat vector of length ``dim`` and the name ->
tensor mapping that :func:`torch.func.functional_call` takes. The views it returns share storage
with the flat vector, so gradients with respect to the flat vector come out flat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from flatkd.landscape.errors import LandscapeInputError


@dataclass(frozen=True)
class ParameterSpace:
    """Names and shapes of the trainable parameters, in ``model.named_parameters()`` order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParameterSpace:
        """The trainable parameters of ``model``; none at all is a :class:`LandscapeInputError`."""
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise LandscapeInputError(
                f"{type(model).__name__} has no trainable parameters (none with requires_grad=True): "
                "there is no loss landscape to measure"
            )
        return cls(tuple(n for n, _ in named), tuple(p.shape for _, p in named))

    def restricted(self, names: set[str]) -> ParameterSpace:
        """The subspace of the parameters named in ``names`` (order kept)."""
        kept = [(n, s) for n, s in zip(self.names, self.shapes) if n in names]
        return ParameterSpace(tuple(n for n, _ in kept), tuple(s for _, s in kept))

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(s.numel() for s in self.shapes)

    @property
    def dim(self) -> int:
        """Number of scalar parameters: the dimension of the Hessian."""
        return sum(self.numels)

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate ``tensors[name]`` for every name, in order, into one vector."""
        return torch.cat([tensors[name].reshape(-1) for name in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``flat`` into views shaped like the parameters (no copy)."""
        pieces = torch.split(flat, self.numels)
        return {name: piece.view(shape) for name, piece, shape in zip(self.names, pieces, self.shapes)}
