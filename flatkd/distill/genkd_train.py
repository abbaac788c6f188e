"""The two-stage epoch of generative feature KD as a training step of :func:`flatkd.train.fit`
(see :mod:`flatkd.distill.genkd` for the pieces).

Following the official code (github.com/aaai-24/Generative-based-KD,
``recognition/train_Top_I3D_KD.py``), every epoch makes two passes over the training data:

1. **CVAE stage** (network, attention head and attention adapter frozen; network in eval mode):
   ``L1 = MSE(F_hat, F) + 0.1 KL  +  0.01 * GD``, GD only when a teacher is given.
2. **Network stage** (CVAE and feature adapter frozen):
   ``L2 = task(classify(F_A), y) + r(e) * MSE(g(z, A), F)  +  beta * AD``, with ``z ~ N(A, I)``
   drawn from the prior, the ramp ``r(e) = 0.5 * min(1, (e / E) / ramp_fraction)`` over the
   share ``e / E`` of the stage's E epochs done (0-based e; the release's ``min(epoch, 20) / 20``
   over its 200 epochs is ``ramp_fraction = 0.1``) and AD only when a teacher is given.

The task loss is the label cross-entropy by default (the release applies it to softmax outputs
summed over time, i.e. a second softmax; flatkd uses the logits); pass another (e.g. a PKD loss
closure) for ``--method pkd+genkd``. Without a teacher the same epoch is the paper's "Feature
Representation" phase, which trains a teacher's branch before it can teach.

:class:`GenKDStep` is that epoch: two phases over the same batches (``cvae`` then ``net``), each
with its own optimiser; the training loop runs them, so generative KD gets the loop's learning-rate
schedule (per step), resume, DDP, bf16 autocast and metrics. The networks only need
:class:`FeatureNetwork`'s two methods; a batch carries the student's and the teacher's modality
of the same clips.

How much the teacher terms steer the network is measured, not assumed: on the first
``probe_batches`` batches of every epoch's network stage the step takes the gradient of each term
alone with respect to the parameters the network optimiser updates and logs (``metrics.csv``,
columns ``ad_grad_ratio`` and ``recon_grad_ratio``, the mean over the probed batches)::

    ratio_k = || grad_theta (w_k L_k) ||_2 / || grad_theta L_task ||_2

with ``w_ad = beta`` and ``w_recon = r(e)``. The probes only read gradients (``torch.autograd.grad``,
nothing accumulates in ``.grad`` and no random number is drawn), so they change no trained weight.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from flatkd.distill.genkd import GenKDBranch, GenKDConfig, GenKDStudent, cvae_loss, reweight
from flatkd.train.losses import Batch
from flatkd.train.steps import Optimised, Phase, StepOutput

TaskLoss = Callable[[Any, torch.Tensor], torch.Tensor]


class FeatureNetwork(Protocol):
    """A network split at the distilled feature map."""

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Feature map [B, C, T, H, W] of a batch of clips."""
        ...

    def classify(self, features: torch.Tensor) -> Any:
        """The rest of the network applied to a (reweighted) feature map."""
        ...

    def train(self, mode: bool = True) -> Any: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


def recon_ramp(epoch: int, epochs: int, config: GenKDConfig) -> float:
    """Weight of the network stage's reconstruction term in epoch ``epoch`` (0-based) of a stage
    of ``epochs``: ``recon_weight * min(1, p / ramp_fraction)`` with ``p = epoch / epochs`` the
    share of the stage done, so 0 at epoch 0 and ``recon_weight`` from the first epoch with
    ``p >= ramp_fraction`` (from the start when ``ramp_fraction`` is 0).

    >>> [recon_ramp(e, 6, GenKDConfig(ramp_fraction=0.5)) for e in range(5)]
    [0.0, 0.16666666666666666, 0.3333333333333333, 0.5, 0.5]
    """
    progress = epoch / epochs
    if progress >= config.ramp_fraction:
        return config.recon_weight
    return config.recon_weight * progress / config.ramp_fraction


def gradient_norm(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> float:
    """``|| grad_params loss ||_2`` without touching ``.grad`` (the graph is kept for the step)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.float().pow(2).sum()) for g in grads if g is not None))


def gradient_ratios(
    losses: Mapping[str, torch.Tensor], weights: Mapping[str, float], params: Sequence[nn.Parameter]
) -> dict[str, float]:
    """``|| grad (w_k L_k) || / || grad L_task ||`` for every term ``k`` of ``weights`` present in
    ``losses`` (0 for a zero weight; NaN when the task gradient vanishes)."""
    task = gradient_norm(losses["task"], params)
    ratios = {}
    for term, weight in weights.items():
        if term in losses:
            norm = weight * gradient_norm(losses[term], params) if weight else 0.0
            ratios[term] = norm / task if task > 0 else math.nan
    return ratios


def teacher_attention(teacher_net: FeatureNetwork, teacher: GenKDBranch, inputs: torch.Tensor) -> torch.Tensor:
    """The frozen teacher's attention map ``A_t`` [B, C_t, T] on its own input."""
    with torch.no_grad():
        return torch.sigmoid(teacher.attention(teacher_net.features(inputs)))


def cvae_stage_loss(
    features: torch.Tensor, student: GenKDStudent, teacher: GenKDBranch | None, config: GenKDConfig
) -> dict[str, torch.Tensor]:
    """Stage-1 losses on one batch of the student's (frozen) features [B, C, T, H, W]."""
    features = features.detach()
    with torch.no_grad():
        logits = student.branch.attention(features)
    attention = torch.sigmoid(logits)
    mean, log_var, recon = student.branch.cvae(features, attention)
    losses = {"cvae": cvae_loss(recon, features, mean, log_var, attention, config.kl_weight)}
    total = losses["cvae"]
    if teacher is not None:
        with torch.no_grad():
            conditioning = student.to_teacher_attention(logits)
        _, _, teacher_recon = teacher.cvae(student.to_teacher_features(features), conditioning)
        losses["gd"] = F.mse_loss(student.to_teacher_features(recon), teacher_recon)
        total = total + config.gd_weight * losses["gd"]
    losses["total"] = total
    return losses


def network_stage_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    classify: Callable[[torch.Tensor], Any],
    student: GenKDStudent,
    recon_weight: float,
    config: GenKDConfig,
    target_attention: torch.Tensor | None = None,
    task_loss: TaskLoss = F.cross_entropy,
) -> dict[str, torch.Tensor]:
    """Stage-2 losses on one batch: ``features`` [B, C, T, H, W] with gradient, the ramped
    reconstruction weight (:func:`recon_ramp`), the teacher's attention ``target_attention``
    [B, C_t, T] when distilling."""
    logits = student.branch.attention(features)
    attention = torch.sigmoid(logits)
    losses = {"task": task_loss(classify(reweight(features, attention)), labels)}
    recon = student.branch.cvae.generate(attention, features.shape[-2:])
    losses["recon"] = F.mse_loss(recon, features)
    total = losses["task"] + recon_weight * losses["recon"]
    if target_attention is not None:
        losses["ad"] = F.mse_loss(student.to_teacher_attention(logits), target_attention)
        total = total + config.ad_weight * losses["ad"]
    losses["total"] = total
    return losses


@contextlib.contextmanager
def _frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """``params`` do not require gradients inside the block; their flags are restored after."""
    params = list(params)
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


class GenKDStep:
    """One generative-KD epoch as two phases of a :class:`flatkd.train.Step`.

    - ``cvae`` (optimiser ``cvae``, which should hold ``student.cvae_parameters()``): the student
      network in eval mode and frozen, :func:`cvae_stage_loss` on its features;
    - ``net`` (optimiser ``network``: the network's trainable parameters and
      ``student.network_parameters()``): CVAE frozen, :func:`network_stage_loss`, Attention
      Distillation against the teacher's attention on its own modality of the same clips.

    The teacher (``teacher_net`` and its ``teacher`` branch, both or neither) runs in eval mode and
    is never updated; without one the step has no teacher term (no GD, no AD) and never reads
    another modality. ``epochs``: the stage's length (the reconstruction ramp is a share of it);
    ``probe_batches``: batches per epoch whose gradient ratios are measured (0: none). ``kept`` is what the stage's best-weights file holds (the student network,
    or the branch when training a teacher's branch); every weight of the student network and its
    branch goes into the resume state.
    """

    phases = (Phase("cvae", "cvae"), Phase("net", "network"))

    def __init__(
        self,
        student_net: FeatureNetwork,
        student: GenKDStudent,
        optimizers: Mapping[str, Optimised],
        *,
        modality: str,
        kept: nn.Module,
        epochs: int,
        teacher_net: FeatureNetwork | None = None,
        teacher: GenKDBranch | None = None,
        teacher_modality: str | None = None,
        config: GenKDConfig = GenKDConfig(),
        task_loss: TaskLoss = F.cross_entropy,
        probe_batches: int = 4,
    ) -> None:
        if (teacher_net is None) != (teacher is None) or (teacher is None) != (teacher_modality is None):
            raise ValueError("pass teacher_net, teacher and teacher_modality, or none of them")
        if set(optimizers) != {"cvae", "network"}:
            raise ValueError(f"expected optimisers 'cvae' and 'network', got {sorted(optimizers)}")
        self.student_net, self.student, self.optimizers = student_net, student, dict(optimizers)
        self.modality, self.kept, self.config, self.task_loss = modality, kept, config, task_loss
        self.epochs, self.probe_batches = epochs, probe_batches
        self.probes: dict[int, list[dict[str, float]]] = {}
        self.teacher_net, self.teacher, self.teacher_modality = teacher_net, teacher, teacher_modality
        self.trained = nn.ModuleDict({"net": student_net, "genkd": student})  # type: ignore[dict-item]
        self.helpers = [] if teacher is None else [teacher_net, teacher]

    @contextlib.contextmanager
    def phase(self, phase: Phase) -> Iterator[None]:
        teacher_params = [] if self.teacher is None else list(self.teacher.parameters())
        if self.teacher is not None:
            self.teacher.eval()
            self.teacher_net.train(False)
        cvae_stage = phase.name == "cvae"
        frozen = teacher_params if cvae_stage else [*teacher_params, *self.student.cvae_parameters()]
        self.student.train()
        self.student_net.train(not cvae_stage)
        with _frozen(frozen):
            yield

    def __call__(self, phase: Phase, batch: Batch) -> StepOutput:
        inputs = batch.inputs[self.modality]
        if phase.name == "cvae":
            with torch.no_grad():
                features = self.student_net.features(inputs)
            return StepOutput(cvae_stage_loss(features, self.student, self.teacher, self.config))
        target = None
        if self.teacher is not None:
            target = teacher_attention(self.teacher_net, self.teacher, batch.inputs[self.teacher_modality])
        features = self.student_net.features(inputs)
        weight = recon_ramp(batch.epoch, self.epochs, self.config)
        losses = network_stage_loss(
            features, batch.labels, self.student_net.classify, self.student, weight, self.config, target,
            self.task_loss,
        )  # fmt: skip
        probes = self.probes.setdefault(batch.epoch, [])
        if len(probes) < self.probe_batches:
            probes.append(gradient_ratios(losses, {"ad": self.config.ad_weight, "recon": weight}, self._network_params()))
        return StepOutput(losses)

    def _network_params(self) -> list[nn.Parameter]:
        """The parameters the network optimiser updates (those not frozen in this phase)."""
        groups = self.optimizers["network"].optimizer.param_groups
        return [p for group in groups for p in group["params"] if p.requires_grad]

    def epoch_columns(self, epoch: int) -> dict[str, float]:
        """The epoch's reconstruction weight and the mean gradient ratio of each measured term
        (``<term>_grad_ratio``)."""
        columns = {"recon_weight": recon_ramp(epoch, self.epochs, self.config)}
        probes = self.probes.get(epoch, [])
        for term in dict.fromkeys(t for probe in probes for t in probe):
            columns[f"{term}_grad_ratio"] = sum(p[term] for p in probes) / len(probes)
        return columns
