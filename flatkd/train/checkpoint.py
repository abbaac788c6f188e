"""Checkpoint files of a training stage: best weights (safetensors) and the resume state.

The resume state is one file written atomically after each finished epoch (weights, optimiser
buffers, best-so-far, metrics history, the settings it ran with), so a kill at any moment leaves
either the previous epoch's state or the new one; it holds only tensors, numbers, strings and
containers of them and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flatkd.errors import InputFileError
from flatkd.fileio import load_tensors, load_torch_state, save_tensors, save_torch_state


@dataclasses.dataclass(frozen=True)
class StageFiles:
    """Where one training stage keeps its results: the best weights, the resume state, and a
    function that replaces the stage's rows of the metrics table; ``owner`` (e.g. the run
    directory) names them in messages. The run layer hands these to the training loop."""

    weights: Path
    resume: Path
    write_metrics: Callable[[Sequence[Mapping[str, Any]]], None]
    owner: str


@dataclasses.dataclass
class ResumeState:
    """What a stage needs to continue after ``epochs_done`` epochs."""

    epochs_done: int
    best_metric: float
    best_epoch: int
    history: list[dict[str, Any]]
    settings: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]


def save_weights(path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any]) -> None:
    """The model's state dict as safetensors, with ``metadata`` (values stringified)."""
    save_tensors(path, model.state_dict(), {k: str(v) for k, v in metadata.items()})


def load_weights(path: str | os.PathLike[str], model: nn.Module) -> None:
    """Load weights written by :func:`save_weights` into ``model`` (exact names and shapes)."""
    apply_weights(model, load_tensors(path), path)


def apply_weights(model: nn.Module, tensors: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(tensors)``; a mismatch raises :class:`InputFileError` naming
    ``source`` and the first problem."""
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise InputFileError(f"{source}: does not match the network ({detail[:160]})") from None


def save_resume(path: str | os.PathLike[str], state: ResumeState) -> None:
    save_torch_state(path, dataclasses.asdict(state))


def load_resume(path: str | os.PathLike[str]) -> ResumeState:
    """Read a resume state; a torn, foreign or unsafe file raises :class:`InputFileError`. A state
    written before epochs were counted from 1 (its first metrics row is epoch 0) is renumbered."""
    try:
        raw = load_torch_state(path)
    except InputFileError as exc:
        raise InputFileError(f"{exc}; delete it to restart that stage") from None
    fields = {f.name for f in dataclasses.fields(ResumeState)}
    if not isinstance(raw, dict) or set(raw) != fields:
        raise InputFileError(f"{path}: not a flatkd resume state; delete it to restart that stage")
    state = ResumeState(**raw)
    if state.history and state.history[0].get("epoch") == 0:
        state.history = [row | {"epoch": row["epoch"] + 1} for row in state.history]
        state.best_epoch += 1
    return state
