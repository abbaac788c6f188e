"""Progressive knowledge distillation (PKD): which teacher head the internal classifiers learn
from at each epoch, and the loss they learn with.

Soufleri, Ravikumar & Roy, "Advancing Compressed Video Action Recognition through Progressive
Knowledge Distillation" (arXiv 2407.02713, 2024); release github.com/Efstathia-Soufleri/PKD.

The backbone of the student network (one modality) is frozen; its internal classifiers (ICs,
every exit but the final head) all learn from one teacher at a time. Teachers are final heads of
the modality networks, each running on its own modality's input of the same clip, visited along
the chain from the sharpest minimum to the flattest (``chain.json``). Where the chain names the
student's own modality, the teacher is the student's own final head (no second network).
Training is cut into phases, one per teacher; phase ``i`` starts at epoch ``starts[i]`` and lasts
until the next one starts (the release: epochs 0-49, 50-99, 100-299 of 300).

Default phase starts (:func:`default_starts`), for ``n`` teachers over the ``E`` epochs of the IC
stage, scale with ``E`` as the release's fractions of its schedule: every phase but the last lasts
``s = max(1, round(E / 6))`` epochs (50 of 300), the last one the rest, so the phases start at
``0, s, 2s, ...`` (``E = 12``: 0, 2, 4; ``E = 3``: 0, 1, 2). With fewer epochs than teachers
(``E < n``) not every teacher can have an epoch: the first ``E - 1`` teachers and the last (the
flattest, which teaches longest in the release) teach one epoch each, in chain order, and the
others are left out (:attr:`PKDSchedule.dropped`); e.g. ``E = 2`` on MV -> residual -> I-frame:
MV at epoch 0, I-frame from epoch 1. Explicit ``phase_starts`` name one start per teacher.

Variants (``PKDConfig.variant``):

- ``pkd``: the chain order;
- ``pkd-paper``: the papers' order MV -> residual -> I-frame (:data:`~flatkd.landscape.chain.PAPER_CHAIN`),
  whatever the measured chain says (the control of a measured chain that differs from it);
- ``pkd-reversed``: the chain reversed (flattest first; the release's "anticurriculum");
- ``pkd-iframe``: one phase, the I-frame network's head only (the release's single-teacher run);
- ``kd``: one phase, the student network's own final head (plain self-distillation of the ICs);
- ``ce``: no teacher, label cross-entropy on the same frozen setup (the CE baseline).

The release's progressive script gives *every* student the teachers MV head -> residual head ->
own head, i.e. the flattest slot of the chain (I-frame) is taken by the student's own head even
for the MV and residual students; the paper's text says the I-frame network teaches last. flatkd
follows the chain (for the I-frame student both agree); ``own_head_flattest=True`` reproduces the
release literally.

Loss (:class:`PKDLoss`): with student exits ``z_1..z_E`` (``z_E`` the final head) and teacher
logits ``t``, ``L = (1/(E-1)) sum_{i<E} KD(z_i, t)`` with :class:`~flatkd.distill.kd.KDLoss`; the
CE baseline is ``(1/(E-1)) sum_{i<E} CE(z_i, y)``. The ICs' parameters are disjoint, so the mean
of per-IC losses gives each IC the gradient of its own loss (scaled by 1/(E-1)), like the release's
one optimizer per IC.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from flatkd.distill.kd import KDLoss
from flatkd.errors import ConfigError
from flatkd.landscape.chain import PAPER_CHAIN, Chain
from flatkd.modalities import MODALITIES

Variant = Literal["ce", "kd", "pkd", "pkd-paper", "pkd-reversed", "pkd-iframe"]

#: The release's non-final phases each last this fraction of training (50 of 300 epochs).
RELEASE_PHASE_FRACTION = 1 / 6
#: the variants with one phase per teacher of a chain (the ones ``phase_starts`` applies to)
PHASED_VARIANTS: tuple[Variant, ...] = ("pkd", "pkd-paper", "pkd-reversed")


@dataclass(frozen=True)
class Teacher:
    """The head that teaches in one phase: the final head of network ``modality``; ``own`` when
    that network is the student itself (its own final exit, no extra forward pass)."""

    modality: str
    own: bool

    @property
    def label(self) -> str:
        """``"own"`` or the teacher network's modality, for logs and tables."""
        return "own" if self.own else self.modality


@dataclass(frozen=True)
class PKDConfig:
    """PKD settings. ``phase_starts``: first epoch of each phase of the multi-teacher variants
    (:data:`PHASED_VARIANTS`; ``None``: the release's proportions, see :func:`default_starts`);
    the single-teacher variants (``kd``, ``pkd-iframe``) have one phase and ignore it."""

    variant: Variant = "pkd"
    phase_starts: tuple[int, ...] | None = None
    own_head_flattest: bool = False
    kd: KDLoss = field(default_factory=KDLoss)


@dataclass(frozen=True)
class PKDSchedule:
    """Teacher per phase for one student network; no phases for the CE baseline. ``dropped``:
    teachers of the chain left out because the stage has fewer epochs than teachers."""

    student: str
    teachers: tuple[Teacher, ...]
    starts: tuple[int, ...]
    dropped: tuple[Teacher, ...] = ()

    def teacher_at(self, epoch: int) -> Teacher | None:
        """The teacher of ``epoch`` (0-based); ``None`` for the CE baseline."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not self.teachers:
            return None
        return self.teachers[bisect.bisect_right(self.starts, epoch) - 1]

    def external_teachers(self) -> tuple[str, ...]:
        """Modalities whose trained networks must be loaded to run this schedule."""
        return tuple(sorted({t.modality for t in self.teachers if not t.own}))


def build_schedule(chain: Sequence[str], student: str, epochs: int, config: PKDConfig) -> PKDSchedule:
    """The teacher schedule of ``student`` over ``epochs`` epochs for the chain ``chain``
    (modalities, sharpest first, e.g. ``read_chain(run).order``). Raises :class:`ConfigError`
    for phases that do not fit; the teacher networks to load are ``external_teachers()``."""
    if student not in MODALITIES:
        raise ConfigError(f"unknown student modality {student!r} (valid: {', '.join(MODALITIES)})")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if config.variant == "ce":
        return PKDSchedule(student, (), ())
    if config.variant == "kd":
        return PKDSchedule(student, (Teacher(student, True),), (0,))
    if config.variant == "pkd-iframe":
        return PKDSchedule(student, (Teacher("iframe", student == "iframe"),), (0,))
    order = PAPER_CHAIN if config.variant == "pkd-paper" else Chain(tuple(chain)).order
    teachers = [Teacher(m, m == student) for m in order]
    if config.own_head_flattest:
        teachers[-1] = Teacher(student, True)
    if config.variant == "pkd-reversed":
        teachers.reverse()
    dropped: list[Teacher] = []
    starts = config.phase_starts
    if starts is None:
        if epochs < len(teachers):
            dropped, teachers = teachers[epochs - 1 : -1], teachers[: epochs - 1] + teachers[-1:]
        starts = default_starts(len(teachers), epochs)
    _check_starts(starts, len(teachers), epochs)
    return PKDSchedule(student, tuple(teachers), tuple(starts), tuple(dropped))


def default_starts(phases: int, epochs: int) -> tuple[int, ...]:
    """The release's phase starts scaled to ``epochs`` (module docstring), ``phases <= epochs``.

    >>> default_starts(3, 300), default_starts(3, 12), default_starts(3, 3), default_starts(2, 2)
    ((0, 50, 100), (0, 2, 4), (0, 1, 2), (0, 1))
    """
    step = max(1, round(epochs * RELEASE_PHASE_FRACTION))
    return tuple(i * step for i in range(phases))


def _check_starts(starts: Sequence[int], phases: int, epochs: int) -> None:
    """The phase starts (default, ``pkd.phase_starts`` or ``--phase-starts``) fit the chain and the epochs."""
    if len(starts) != phases:
        raise ConfigError(f"pkd.phase_starts has {len(starts)} entries but the chain has {phases} teachers")
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
        raise ConfigError(f"pkd.phase_starts must start at 0 and increase, got {list(starts)}")
    if starts[-1] >= epochs:
        raise ConfigError(
            f"pkd.phase_starts {list(starts)}: the last phase starts at epoch {starts[-1]} but the IC stage has"
            f" only {epochs} epochs; start the phases earlier or train the ICs longer (--epochs)"
        )


class LossBatch(Protocol):
    """What :class:`PKDLoss` reads from a training batch (:class:`flatkd.train.losses.Batch`)."""

    labels: torch.Tensor
    epoch: int
    teacher_logits: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class PKDLoss:
    """Loss of the ICs of one student network (see the module docstring); a
    :class:`flatkd.train.losses.Loss`. Pass :meth:`active_teachers` to the
    :class:`flatkd.train.losses.TeacherLogits` hook so that only the current teacher runs."""

    schedule: PKDSchedule
    kd: KDLoss = field(default_factory=KDLoss)

    def active_teachers(self, epoch: int) -> tuple[str, ...]:
        """The teacher network to run at ``epoch`` (none when the student's own head teaches)."""
        teacher = self.schedule.teacher_at(epoch)
        return () if teacher is None or teacher.own else (teacher.modality,)

    def __call__(self, exit_logits: Sequence[torch.Tensor], batch: LossBatch) -> torch.Tensor:
        """``exit_logits``: the student's exits, ICs first and its final head last, each [B, K];
        ``batch.teacher_logits[m]`` [B, K]: the final head of the current teacher network ``m`` on
        its own modality's input of the same clips."""
        if len(exit_logits) < 2:
            raise ValueError("PKD needs at least one internal classifier before the final head")
        ics = exit_logits[:-1]
        teacher = self.schedule.teacher_at(batch.epoch)
        if teacher is None:
            return torch.stack([F.cross_entropy(z, batch.labels) for z in ics]).mean()
        if teacher.own:
            target = exit_logits[-1]
        elif teacher.modality in batch.teacher_logits:
            target = batch.teacher_logits[teacher.modality]
        else:
            raise ValueError(f"epoch {batch.epoch} is taught by the {teacher.modality} head: its logits are missing")
        return torch.stack([self.kd(z, target, batch.labels) for z in ics]).mean()
