"""What a training step hands to its loss, the loss protocol, and the batch hooks.

A step builds a :class:`Batch` (every modality the data loader serves for the same clips, the
labels, the epoch), lets each :class:`BatchHook` add to it (e.g. :class:`TeacherLogits` runs frozen
teacher networks on *their own* modality of the same clips), runs the student on its modality and
calls the :class:`Loss` with the student's exit logits and the batch. Label cross-entropy
(:class:`ExitCrossEntropy`) is one loss; the distillation losses (KD, PKD) are others: they read
``batch.teacher_logits`` and ``batch.epoch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass
class Batch:
    """One training batch.

    Attributes:
        inputs: modality -> clips ``[B, S, C, H, W]`` (the same clips and GOP positions).
        labels: ``[B]`` class indices.
        epoch: the current epoch (0-based), for losses on a schedule.
        teacher_logits: modality -> ``[B, K]`` logits of that modality's teacher, filled by hooks.
    """

    inputs: dict[str, Tensor]
    labels: Tensor
    epoch: int
    teacher_logits: dict[str, Tensor] = dataclasses.field(default_factory=dict)


class Loss(Protocol):
    """A training objective: the student's exit logits (earliest first, each ``[B, K]``) and the
    batch -> a scalar to minimise."""

    def __call__(self, exit_logits: Sequence[Tensor], batch: Batch) -> Tensor: ...


class BatchHook(Protocol):
    """Called on every training batch before the student runs; adds what the loss needs. A hook
    that is an ``nn.Module`` is moved to the training device with the student."""

    def __call__(self, batch: Batch) -> None: ...

    @property
    def modalities(self) -> Collection[str]:
        """Modalities of the batch the hook reads (the data loader must serve them)."""
        ...


@dataclasses.dataclass(frozen=True)
class ExitCrossEntropy:
    """Label cross-entropy averaged over the chosen exits: ``mean_e CE(z_e, y)``.

    ``exits`` are exit indices (negative counts from the end: ``(-1,)`` is the final ``fc``,
    which is how CoViAR trains the backbone).
    """

    exits: tuple[int, ...]

    def __call__(self, exit_logits: Sequence[Tensor], batch: Batch) -> Tensor:
        return torch.stack([F.cross_entropy(exit_logits[e], batch.labels) for e in self.exits]).mean()


class TeacherLogits(nn.Module):
    """Runs frozen teacher networks, each on its own modality of the batch's clips, and stores
    the chosen exit's logits (default: the final head) in ``batch.teacher_logits[modality]``.

    Teachers stay in eval mode (fixed BatchNorm statistics) and get no gradients. ``active``
    (epoch -> modalities) limits which teachers run at an epoch, e.g. only the current teacher of
    a PKD schedule; by default all run.
    """

    def __init__(
        self,
        teachers: Mapping[str, nn.Module],
        exit_index: int = -1,
        active: Callable[[int], Collection[str]] | None = None,
    ):
        super().__init__()
        self.teachers = nn.ModuleDict(dict(teachers))
        self.exit_index = exit_index
        self.active = active
        self.requires_grad_(False)
        self.eval()

    @property
    def modalities(self) -> Collection[str]:
        return tuple(self.teachers.keys())

    def train(self, mode: bool = True) -> TeacherLogits:
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch: Batch) -> None:
        wanted = self.modalities if self.active is None else self.active(batch.epoch)
        for modality in wanted:
            if modality in self.teachers:
                logits = self.teachers[modality](batch.inputs[modality])[self.exit_index]
                batch.teacher_logits[modality] = logits.float()
