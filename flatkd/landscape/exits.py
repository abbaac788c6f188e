"""Measuring one exit of a multi-exit network.

The multi-exit networks of :mod:`flatkd.models` return a list of logits, one per internal
classifier and the final head. Flatness is a property of one loss, so one exit is chosen:
``SelectExit(model, -1)`` is the final head, ``SelectExit(model, 0)`` the first internal
classifier. Its parameters are the wrapped model's (prefixed ``model.``); wrapping copies nothing.
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
        outputs = self.model(*args, **kwargs)
        if not isinstance(outputs, list | tuple):
            raise LandscapeInputError("SelectExit wraps a model that returns a list of exit outputs")
        if not -len(outputs) <= self.index < len(outputs):
            raise LandscapeInputError(
                f"exit {self.index} does not exist: the model has {len(outputs)} exits "
                f"(0..{len(outputs) - 1}, or -1 for the last)"
            )
        return outputs[self.index]
