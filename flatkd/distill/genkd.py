"""Generative model-based feature knowledge distillation (the building blocks).

Wang, Zhao, Shi, Zhao & Yang, "Generative Model-based Feature Knowledge Distillation for Action
Recognition", AAAI 2024 (arXiv 2312.08644); official code github.com/aaai-24/Generative-based-KD
(``recognition/BDNet_student.py``, ``multisegment_loss.py``, ``train_Top_I3D_KD.py``).

Per network, on a feature map ``F`` [B, C, T, H, W] (T time steps: the TSN segments):

- an attention head turns ``F`` into logits ``a`` [B, C, T] and a channel-by-time map
  ``A = sigmoid(a)`` in (0, 1). It pools over space (mean and max, as in CBAM, Woo et al. 2018)
  before a temporal convolution, so the spatial size does not matter (the release uses a 7x7
  "valid" convolution tied to I3D's 7x7 map);
- the features are reweighted, ``F_A = F * A`` (broadcast over H, W), and rescaled per clip to
  keep ``sum |F|`` (the release rescales by the sums over the whole batch, which makes a clip's
  prediction depend on its batch);
- a conditional VAE with a latent ``z_t`` in R^C per time step: encoder
  ``q(z_t | F_t, A_t) = N(mu_t, diag sigma_t^2)``, prior ``p(z_t | A_t) = N(A_t, I)``, decoder
  ``F_hat = g(z, A)``. Its loss is ``MSE(F_hat, F) + 0.1 * KL``, the KL averaged over elements
  like the release::

      KL = mean over (b, c, t) of  1/2 * (sigma^2 + (mu - A)^2 - 1 - log sigma^2)

  The encoder pools ``F`` to a fixed ``grid x grid`` map; the decoder produces that grid and
  resizes it bilinearly to ``H x W``.

Distillation terms (teacher branch frozen, pretrained on the teacher's features):

- Generative Distillation ``GD = MSE(F_hat_s, F_hat_t)``, both CVAEs run on the STUDENT's features
  and attention (weight 0.01);
- Attention Distillation ``AD = MSE(A_s, A_t)``, the teacher's attention from its own input of the
  same clip (weight beta = 0.1).

Networks trained separately (e.g. an I-frame teacher and an MV student) have channels that do not
correspond, nor need the same count: :class:`TeacherAdapter` maps the student into the teacher's
channel space with 1x1 maps, one for features (used by GD: ``P(F_s)`` goes into the teacher's
CVAE, ``P(F_hat_s)`` is compared with its output) and one for attention logits (used by GD's
conditioning and by AD: ``sigmoid(Q a_s)`` against ``A_t``). The two-stage training that uses
these pieces is in :mod:`flatkd.distill.genkd_train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from flatkd.errors import ConfigError


@dataclass(frozen=True)
class GenKDConfig:
    """Loss weights; the defaults are the paper's recognition setting (``ad_weight`` is beta).

    ``ramp_fraction``: the share of the stage's epochs over which the network stage's
    reconstruction weight rises from 0 to ``recon_weight``
    (:func:`flatkd.distill.genkd_train.recon_ramp`). The release ramps over 20 of its 200 epochs
    (``recognition/train_Top_I3D_KD.py``, ``configs/stu_thumos14.yaml``): 0.1.
    """

    #: keys of earlier versions and what replaced them (named by the error a recorded one gives)
    REPLACED_KEYS: ClassVar[dict[str, str]] = {
        "ramp_epochs": "ramp_fraction (a share 0..1 of the stage's epochs, not a count; the release's 20 of 200 is 0.1)"
    }

    kl_weight: float = 0.1
    gd_weight: float = 0.01
    ad_weight: float = 0.1
    recon_weight: float = 0.5
    ramp_fraction: float = 0.1

    def __post_init__(self) -> None:
        if min(self.kl_weight, self.gd_weight, self.ad_weight, self.recon_weight) < 0:
            raise ConfigError(f"genkd: loss weights must be >= 0, got {self}")
        if not 0 <= self.ramp_fraction <= 1:
            raise ConfigError(f"genkd: ramp_fraction is a share of the epochs in [0, 1], got {self.ramp_fraction}")


def _hidden(channels: int, hidden: int | None) -> int:
    return hidden if hidden is not None else max(channels, 16)


def _mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    """Two hidden ReLU layers of ``width``, as the release's encoder and decoder."""
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    )


class AttentionHead(nn.Module):
    """``F`` [B, C, T, H, W] -> attention logits ``a`` [B, C, T]; ``A = sigmoid(a)``."""

    def __init__(self, channels: int, hidden: int | None = None, kernel: int = 3) -> None:
        super().__init__()
        width = _hidden(channels, hidden)
        self.temporal = nn.Sequential(
            nn.Conv1d(2 * channels, width, kernel, padding=kernel // 2),
            nn.GroupNorm(1, width),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, channels, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([features.mean(dim=(-2, -1)), features.amax(dim=(-2, -1))], dim=1)
        return self.temporal(pooled)


def reweight(features: torch.Tensor, attention: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F * A`` rescaled per clip so that ``sum |F * A| = sum |F|``."""
    weighted = features * attention[..., None, None]
    dims = tuple(range(1, features.dim()))
    scale = features.abs().sum(dim=dims, keepdim=True) / weighted.abs().sum(dim=dims, keepdim=True).clamp_min(eps)
    return weighted * scale


class AttentionReweight(nn.Module):
    """``F -> reweight(F, sigmoid(head(F)))``: a network's attention applied to its own feature map,
    as the student uses it before its classifier (:meth:`flatkd.models.MultiExitNet.attach_final_transform`)."""

    def __init__(self, head: AttentionHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return reweight(features, torch.sigmoid(self.head(features)))


class FeatureCVAE(nn.Module):
    """Conditional VAE of a feature map given its attention map (latent ``z_t`` in R^C per time
    step, prior ``N(A_t, I)``)."""

    def __init__(self, channels: int, hidden: int | None = None, grid: int = 4) -> None:
        super().__init__()
        width = _hidden(channels, hidden)
        self.grid = grid
        cells = channels * grid * grid
        self.encoder = _mlp(cells + channels, width, 2 * channels)
        self.decoder = _mlp(2 * channels, width, cells)

    def encode(self, features: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each [B, C, T]."""
        b, c, t = attention.shape
        cells = F.adaptive_avg_pool3d(features, (t, self.grid, self.grid))  # [B, C, T, g, g]
        per_step = cells.permute(0, 2, 1, 3, 4).reshape(b, t, -1)
        out = self.encoder(torch.cat([per_step, attention.transpose(1, 2)], dim=-1))
        mean, log_var = out.transpose(1, 2).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor, attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Feature map [B, C, T, H, W] from latents and attention, each [B, C, T]."""
        b, c, t = attention.shape
        out = self.decoder(torch.cat([z, attention], dim=1).transpose(1, 2))  # [B, T, C*g*g]
        grid = out.reshape(b * t, c, self.grid, self.grid)
        if tuple(size) != (self.grid, self.grid):
            grid = F.interpolate(grid, size=tuple(size), mode="bilinear", align_corners=False)
        return grid.reshape(b, t, c, *size).transpose(1, 2)

    def forward(
        self, features: torch.Tensor, attention: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior pass: (mean, log-variance, reconstruction) with ``z = mean + sigma * eps``."""
        mean, log_var = self.encode(features, attention)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        return mean, log_var, self.decode(z, attention, features.shape[-2:])

    def generate(self, attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Prior pass: a feature map from ``z ~ N(A, I)``."""
        return self.decode(attention + torch.randn_like(attention), attention, size)


def kl_to_attention_prior(mean: torch.Tensor, log_var: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) || N(attention, I))`` averaged over all elements."""
    return 0.5 * (log_var.exp() + (mean - attention) ** 2 - 1.0 - log_var).mean()


def cvae_loss(
    recon: torch.Tensor,
    features: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
    attention: torch.Tensor,
    kl_weight: float = 0.1,
) -> torch.Tensor:
    """``MSE(recon, features) + kl_weight * KL`` (the release's ``loss_cvae``)."""
    return F.mse_loss(recon, features) + kl_weight * kl_to_attention_prior(mean, log_var, attention)


class GenKDBranch(nn.Module):
    """The attention head and CVAE attached to one network's feature map."""

    def __init__(self, channels: int, hidden: int | None = None, grid: int = 4) -> None:
        super().__init__()
        self.attention = AttentionHead(channels, hidden)
        self.cvae = FeatureCVAE(channels, hidden, grid)


class TeacherAdapter(nn.Module):
    """1x1 maps from the student's channel space into the teacher's (features, attention logits)."""

    def __init__(self, student_channels: int, teacher_channels: int) -> None:
        super().__init__()
        self.features = nn.Conv3d(student_channels, teacher_channels, 1)
        self.attention = nn.Conv1d(student_channels, teacher_channels, 1)


class GenKDStudent(nn.Module):
    """A student's branch plus, when its channels do not correspond to the teacher's, the
    adapter into the teacher's channel space (``teacher_channels=None``: no adapter, as when the
    student shares the teacher's architecture and initialisation, like the paper's I3D pair)."""

    def __init__(
        self, channels: int, teacher_channels: int | None = None, hidden: int | None = None, grid: int = 4
    ) -> None:
        super().__init__()
        self.branch = GenKDBranch(channels, hidden, grid)
        self.adapter = TeacherAdapter(channels, teacher_channels) if teacher_channels is not None else None

    def to_teacher_features(self, features: torch.Tensor) -> torch.Tensor:
        """``P(F)``: a student feature map in the teacher's channel space."""
        return features if self.adapter is None else self.adapter.features(features)

    def to_teacher_attention(self, logits: torch.Tensor) -> torch.Tensor:
        """``sigmoid(Q a)``: the student's attention in the teacher's channel space."""
        return torch.sigmoid(logits if self.adapter is None else self.adapter.attention(logits))

    def cvae_parameters(self) -> list[nn.Parameter]:
        """Parameters trained in stage 1: the CVAE and the feature adapter."""
        params = list(self.branch.cvae.parameters())
        return params + ([] if self.adapter is None else list(self.adapter.features.parameters()))

    def network_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with the network in stage 2: attention head, attention adapter."""
        params = list(self.branch.attention.parameters())
        return params + ([] if self.adapter is None else list(self.adapter.attention.parameters()))
