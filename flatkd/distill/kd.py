"""Hinton knowledge-distillation loss with a temperature and a label weight.

With student logits ``s``, teacher logits ``t``, temperature ``T``, label weight ``alpha`` and
one-hot labels ``y``:

    p_t = softmax(t / T),   log q_s = log_softmax(s / T)
    KD  = mean_b  sum_k p_t[b, k] * (log p_t[b, k] - log q_s[b, k])       (KL(p_t || q_s))
    L   = (1 - alpha) * c(T) * KD  +  alpha * CE(s, y),    c(T) = T^2 if t2_scaling else 1

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015) scale the soft term
by T^2 so that its gradients keep their size when T changes; the PKD release
(github.com/Efstathia-Soufleri/PKD, ``train_freeze_backbone_IC_KD_*.py``) trains with T = 1, no
label term and no T^2, which are the defaults here. The release writes the soft term as the
cross-entropy ``H(p_t, q_s)``; that is ``KL(p_t || q_s) + H(p_t)``, and ``H(p_t)`` does not depend on
the student, so both give the same gradients. The KL form is used because it is zero when the
student matches the teacher, which makes logged losses comparable across teachers.

The teacher's logits are detached: gradients reach the student only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from flatkd.errors import ConfigError


@dataclass(frozen=True)
class KDLoss:
    """Callable KD loss; ``KDLoss()(student, teacher)`` is the PKD release's loss."""

    temperature: float = 1.0
    alpha: float = 0.0
    t2_scaling: bool = False

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"kd.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"kd.alpha must lie in [0, 1], got {self.alpha}")

    def __call__(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of ``student`` logits [B, K] against ``teacher`` logits [B, K] (and ``labels`` [B]
        when ``alpha > 0``), averaged over the batch."""
        if student.shape != teacher.shape:
            raise ValueError(f"student logits {tuple(student.shape)} != teacher logits {tuple(teacher.shape)}")
        T = self.temperature
        log_q = F.log_softmax(student / T, dim=-1)
        log_p = F.log_softmax(teacher.detach() / T, dim=-1)
        soft = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
        if self.t2_scaling:
            soft = soft * T * T
        if self.alpha == 0.0:
            return soft
        if labels is None:
            raise ValueError("KDLoss with alpha > 0 needs labels")
        return (1.0 - self.alpha) * soft + self.alpha * F.cross_entropy(student, labels)
