"""Training settings, one :class:`TrainConfig` per modality (``train.<modality>`` in a run's
``config.yaml``). Every field can come from YAML (strictly checked by :mod:`flatkd.config`);
``flatkd train`` flags override single fields.

Per-parameter learning-rate multipliers follow CoViAR (Wu et al., CVPR 2018, ``train.py``): its
ImageNet-initialised MV/residual networks train the stem and input BatchNorm at 0.1x, the classifier
at 1x and everything else at 0.01x. In flatkd that reads::

    optim:
      lr_mult: {"data_bn.*": 0.1, "backbone.conv1.*": 0.1, "backbone.bn1.*": 0.1,
                "backbone.fc.*": 1.0, "backbone.*": 0.01}

Patterns are shell-style (``fnmatch``) over the multi-exit network's parameter names; the first
matching pattern wins, unmatched parameters get 1.0.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from flatkd.models import DEFAULT_EXITS


@dataclasses.dataclass
class OptimConfig:
    """Optimiser: ``sgd`` (momentum, nesterov), ``adam`` or ``adamw`` (eps), base ``lr`` and
    ``weight_decay``; ``no_decay_1d`` exempts biases and normalisation weights from weight decay."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 0.002
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    eps: float = 1e-8
    no_decay_1d: bool = True
    lr_mult: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")
        for pattern, mult in self.lr_mult.items():
            if mult < 0:
                raise ValueError(f"lr_mult[{pattern!r}] must be >= 0, got {mult}")


@dataclasses.dataclass
class ScheduleConfig:
    """Learning-rate factor over training (see :func:`flatkd.train.optim.lr_factor`): ``constant``;
    ``step`` (times ``gamma`` at each epoch in ``milestones``, CoViAR's schedule); ``cosine`` (from 1
    down to ``min_lr_ratio``, per step). An optional linear warm-up over ``warmup_epochs``
    multiplies any of them."""

    name: Literal["constant", "step", "cosine"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if any(m < 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 0, got {list(self.milestones)}")


@dataclasses.dataclass
class StageConfig:
    """One training stage: its epochs, optimiser and schedule."""

    epochs: int = 12
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")


@dataclasses.dataclass
class TrainConfig:
    """Everything ``flatkd train`` needs for one modality besides the data.

    Model: ``preset`` (see ``flatkd.models.list_presets``), ``exits`` (stages followed by an
    internal classifier), ``weights`` (an optional ImageNet/Kinetics weights file for the backbone).
    Input: ``num_segments`` TSN segments of ``input_size`` px. Runtime: ``seed``, batch sizes,
    DataLoader ``workers``, ``device`` (``auto`` picks CUDA when present), ``bf16`` autocast (CUDA
    only), ``sync_bn`` (global-batch BatchNorm statistics under DDP), ``channels_last`` (NHWC
    weights and inputs: faster convolutions on tensor-core GPUs) and ``compile`` (``torch.compile``
    the network's forward); the last two change the rounding, not the maths, so a resume may
    change them (``benchmarks/gpu.py`` measures both). Stages: ``backbone`` trains
    the backbone with label cross-entropy on the final exit, then ``ics`` trains the internal
    classifiers with the backbone frozen (stage name ``ic-ce``).
    """

    preset: str = "cpu-tiny"
    exits: tuple[str, ...] = DEFAULT_EXITS
    weights: str | None = None
    num_segments: int = 3
    input_size: int = 112
    seed: int = 0
    batch_size: int = 16
    eval_batch_size: int = 32
    workers: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True
    sync_bn: bool = True
    channels_last: bool = False
    compile: bool = False
    backbone: StageConfig = dataclasses.field(default_factory=lambda: StageConfig(epochs=12))
    ics: StageConfig = dataclasses.field(default_factory=lambda: StageConfig(epochs=6))

    def __post_init__(self) -> None:
        for name in ("num_segments", "input_size", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
