"""Evaluating a model in eval mode without leaving a trace on it.

Every flatness measurement runs the model in eval mode, so BatchNorm uses (and never updates) its
running statistics. :func:`eval_mode` switches every submodule to eval for the duration of a block
and then gives each submodule back its own ``training`` flag, so a model that was in train mode, or
in a mixed state (a frozen backbone in eval, heads in train), is left exactly as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode for the block; restore each flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
