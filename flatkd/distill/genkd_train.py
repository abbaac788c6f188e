"""The two-stage epoch of generative feature KD (see :mod:`flatkd.distill.genkd` for the pieces).

Following the official code (github.com/aaai-24/Generative-based-KD,
``recognition/train_Top_I3D_KD.py``), every epoch makes two passes over the training data:

1. **CVAE stage** (network, attention head and attention adapter frozen; network in eval mode):
   ``L1 = MSE(F_hat, F) + 0.1 KL  +  0.01 * GD``, GD only when a teacher is given.
2. **Network stage** (CVAE and feature adapter frozen):
   ``L2 = task(classify(F_A), y) + r(epoch) * MSE(g(z, A), F)  +  beta * AD``, with ``z ~ N(A, I)``
   drawn from the prior, ``r(epoch) = 0.5 * min(epoch, 20) / 20`` (0-based epochs; the release
   counts from 1) and AD only when a teacher is given.

The task loss is the label cross-entropy by default (the release applies it to softmax outputs
summed over time, i.e. a second softmax; flatkd uses the logits); pass another (e.g. a PKD loss
closure) for ``--method pkd+genkd``. Without a teacher the same epoch is the paper's "Feature
Representation" phase, which trains a teacher's branch before it can teach.

The networks only need :class:`FeatureNetwork`'s two methods; the batches are
``(student input, teacher input or None, labels)`` with both inputs from the same clips, and the
iterable is read twice per epoch (a DataLoader is).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from flatkd.distill.genkd import GenKDBranch, GenKDConfig, GenKDStudent, cvae_loss, reweight
from flatkd.progress import ProgressFactory, no_progress

Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]
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


def recon_ramp(epoch: int, config: GenKDConfig) -> float:
    """Weight of the network stage's reconstruction term: 0 at epoch 0, ``recon_weight`` from
    epoch ``ramp_epochs`` on."""
    if config.ramp_epochs <= 0:
        return config.recon_weight
    return config.recon_weight * min(epoch, config.ramp_epochs) / config.ramp_epochs


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
    epoch: int,
    config: GenKDConfig,
    target_attention: torch.Tensor | None = None,
    task_loss: TaskLoss = F.cross_entropy,
) -> dict[str, torch.Tensor]:
    """Stage-2 losses on one batch: ``features`` [B, C, T, H, W] with gradient, the teacher's
    attention ``target_attention`` [B, C_t, T] when distilling."""
    logits = student.branch.attention(features)
    attention = torch.sigmoid(logits)
    losses = {"task": task_loss(classify(reweight(features, attention)), labels)}
    recon = student.branch.cvae.generate(attention, features.shape[-2:])
    losses["recon"] = F.mse_loss(recon, features)
    total = losses["task"] + recon_ramp(epoch, config) * losses["recon"]
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


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update that leaves no gradients behind for the other stage to trip over."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def genkd_epoch(
    batches: Iterable[Batch],
    epoch: int,
    student_net: FeatureNetwork,
    student: GenKDStudent,
    cvae_optimizer: torch.optim.Optimizer,
    network_optimizer: torch.optim.Optimizer,
    teacher_net: FeatureNetwork | None = None,
    teacher: GenKDBranch | None = None,
    config: GenKDConfig = GenKDConfig(),
    task_loss: TaskLoss = F.cross_entropy,
    progress: ProgressFactory = no_progress,
) -> dict[str, float]:
    """One epoch: the CVAE stage over ``batches``, then the network stage over them again.

    ``cvae_optimizer`` should hold ``student.cvae_parameters()``; ``network_optimizer`` the
    network's trainable parameters and ``student.network_parameters()``. The teacher (network
    and branch) runs in eval mode and is never updated. Returns the mean of every loss term over
    the batches, keyed ``cvae_<term>`` and ``net_<term>``.
    """
    if (teacher_net is None) != (teacher is None):
        raise ValueError("pass both teacher_net and teacher, or neither")
    if teacher is not None:
        teacher.eval()
        teacher_net.train(False)
    total = len(batches) if isinstance(batches, Sized) else None
    history: dict[str, list[float]] = {}
    with _frozen([] if teacher is None else teacher.parameters()):
        student_net.train(False)
        with progress(total=total, desc=f"genkd epoch {epoch}: CVAE stage") as bar:
            for inputs, _, _ in batches:
                with torch.no_grad():
                    features = student_net.features(inputs)
                losses = cvae_stage_loss(features, student, teacher, config)
                _step(cvae_optimizer, losses["total"])
                for name, value in losses.items():
                    history.setdefault(f"cvae_{name}", []).append(value.item())
                bar.update(1)
        student_net.train(True)
        stage_two = progress(total=total, desc=f"genkd epoch {epoch}: network stage")
        with _frozen(student.cvae_parameters()), stage_two as bar:
            for inputs, teacher_inputs, labels in batches:
                target = None if teacher is None else teacher_attention(teacher_net, teacher, teacher_inputs)
                features = student_net.features(inputs)
                losses = network_stage_loss(
                    features, labels, student_net.classify, student, epoch, config, target, task_loss
                )
                _step(network_optimizer, losses["total"])
                for name, value in losses.items():
                    history.setdefault(f"net_{name}", []).append(value.item())
                bar.update(1)
    return {name: sum(values) / len(values) for name, values in history.items()}
