"""What :func:`flatkd.train.fit` trains: a step object, one or more passes (phases) per epoch.

A :class:`Step` says which optimisers it updates and, for every batch of a phase, which losses to
report and which one to minimise. :class:`LossStep` is the plain case (one phase: run the hooks,
forward the student, minimise a :class:`~flatkd.train.losses.Loss`): the backbone stage, the IC
stages and every IC distillation method. Generative feature KD's two-stage epoch
(:class:`flatkd.distill.genkd_train.GenKDStep`) is another: a CVAE phase and a network phase over
the same batches, each with its own optimiser. The loop does the rest (learning rate, autocast,
backward, gradient averaging under DDP, metrics, checkpoints, resume) once for all of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ContextManager, Protocol

import torch
from torch import Tensor, nn

from flatkd.models import MultiExitNet
from flatkd.train.config import OptimConfig
from flatkd.train.losses import Batch, BatchHook, Loss
from flatkd.train.optim import build_optimizer


@dataclasses.dataclass(frozen=True)
class Phase:
    """One pass over the training batches of an epoch, updating ``optimizer`` (a key of
    :attr:`Step.optimizers`). ``name`` prefixes the phase's loss columns in ``metrics.csv``; the
    single phase of a plain step has none."""

    name: str
    optimizer: str


@dataclasses.dataclass
class StepOutput:
    """The losses of one batch: ``losses["total"]`` is minimised, every term is logged (its
    mean over the phase); ``exits`` (the student's exit logits) give the training accuracy."""

    losses: dict[str, Tensor]
    exits: Sequence[Tensor] | None = None


@dataclasses.dataclass(frozen=True)
class Optimised:
    """An optimiser and its base learning rate (the schedule scales it per step)."""

    optimizer: torch.optim.Optimizer
    lr: float


class Step(Protocol):
    """A stage's training step (see the module docstring)."""

    #: the passes over the training data in every epoch, in order
    phases: Sequence[Phase]
    #: optimiser name -> optimiser and base learning rate
    optimizers: Mapping[str, Optimised]
    #: every module whose weights the stage changes (its state goes into the resume file)
    trained: nn.Module
    #: what the stage's best-weights file holds
    kept: nn.Module
    #: modules that only run (teachers): moved to the device, never saved
    helpers: Sequence[nn.Module]

    def phase(self, phase: Phase) -> ContextManager[None]:
        """Train/eval modes and frozen flags for ``phase``; restored when it ends."""
        ...

    def __call__(self, phase: Phase, batch: Batch) -> StepOutput:
        """The losses of one batch in ``phase``."""
        ...

    def epoch_columns(self, epoch: int) -> Mapping[str, Any]:
        """Extra columns of the epoch's ``metrics.csv`` row (e.g. the teacher a schedule used)."""
        ...


class LossStep:
    """One phase: the hooks fill the batch (e.g. teacher logits), the student ``model`` runs on
    its modality, ``loss(exits, batch)`` is minimised with one optimiser over the trainable
    parameters (choose them with ``model.set_trainable`` first)."""

    phases = (Phase("", "model"),)

    def __init__(
        self,
        model: MultiExitNet,
        loss: Loss,
        optim: OptimConfig,
        hooks: Sequence[BatchHook] = (),
        columns: Callable[[int], Mapping[str, Any]] | None = None,
    ) -> None:
        self.model, self.loss, self.hooks, self.columns = model, loss, tuple(hooks), columns
        self.optimizers = {"model": Optimised(build_optimizer(model, optim), optim.lr)}
        self.trained = self.kept = model
        self.helpers = [h for h in self.hooks if isinstance(h, nn.Module)]

    @contextlib.contextmanager
    def phase(self, phase: Phase) -> Iterator[None]:
        self.model.train()
        yield

    def __call__(self, phase: Phase, batch: Batch) -> StepOutput:
        for hook in self.hooks:
            hook(batch)
        exits = self.model(batch.inputs[self.model.modality])
        return StepOutput({"total": self.loss(exits, batch)}, exits)

    def epoch_columns(self, epoch: int) -> Mapping[str, Any]:
        return {} if self.columns is None else self.columns(epoch)
