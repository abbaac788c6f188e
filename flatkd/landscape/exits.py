"""Measuring one exit of a multi-exit network.

The multi-exit networks of :mod:`flatkd.models` return a list of logits, one per internal
classifier and the final head. Flatness is a property of one loss, so one exit is chosen:
``SelectExit(model, -1)`` is the final head, ``SelectExit(model, 0)`` the first internal
classifier. Its parameters are the wrapped model's (prefixed ``model.``); wrapping copies nothing.

A model that can compute one exit alone, i.e. has ``num_exits`` and
``forward_exit(inputs, index)`` like :class:`flatkd.models.MultiExitNet` (the backbone up to that
exit's stage, then its head), is run that way: the same numbers as picking the exit from the full
forward, without the other exits' heads (for the final exit of ``cpu-tiny`` at 112 px, the three internal
classifiers are ~20% of a forward, paid on every surface point, gradient and double-backward graph
of a measurement). Any other model runs its plain forward and the exit is taken from its list.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from flatkd.landscape.errors import LandscapeInputError


class SelectExit(nn.Module):
    """A view of ``model`` whose forward returns only output number ``index`` of its list."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model = model
        self.index = index

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        count = getattr(self.model, "num_exits", None)
        forward_exit = getattr(self.model, "forward_exit", None)
        if isinstance(count, int) and callable(forward_exit):
            self._check(count)
            return forward_exit(*args, self.index, **kwargs)
        outputs = self.model(*args, **kwargs)
        if not isinstance(outputs, list | tuple):
            raise LandscapeInputError("SelectExit wraps a model that returns a list of exit outputs")
        self._check(len(outputs))
        return outputs[self.index]

    def _check(self, count: int) -> None:
        if not -count <= self.index < count:
            raise LandscapeInputError(
                f"exit {self.index} does not exist: the model has {count} exits "
                f"(0..{count - 1}, or -1 for the last)"
            )
