"""Optimiser with per-parameter learning-rate multipliers, and the learning-rate schedule.

Parameters are grouped by (lr multiplier, weight-decay on/off); each group carries ``lr_mult`` and
the step's learning rate is set explicitly every step as ``lr = base_lr * lr_mult * factor(step)``
(CoViAR's ``adjust_learning_rate`` does the same per epoch). The schedule is a pure function of
the step, so resuming needs no scheduler state: only the optimiser's own buffers are saved.
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn

from flatkd.errors import ConfigError
from flatkd.train.config import OptimConfig, ScheduleConfig


def lr_multiplier(name: str, rules: dict[str, float]) -> float:
    """The multiplier of the first ``fnmatch`` pattern in ``rules`` matching ``name`` (else 1)."""
    for pattern, mult in rules.items():
        if fnmatch.fnmatchcase(name, pattern):
            return mult
    return 1.0


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser over ``model``'s trainable parameters, grouped by lr multiplier and decay."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decay = not (config.no_decay_1d and param.dim() <= 1)
            groups.setdefault((lr_multiplier(name, config.lr_mult), decay), []).append(param)
    if not groups:
        raise ConfigError("nothing to train: every parameter of the model is frozen")
    param_groups = [
        {"params": params, "lr_mult": mult, "weight_decay": config.weight_decay if decay else 0.0}
        for (mult, decay), params in groups.items()
    ]
    if config.name == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    optimizer_cls = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return optimizer_cls(param_groups, lr=config.lr, eps=config.eps)


def lr_factor(config: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Factor on the base learning rate at global ``step`` (0-based).

    With ``t = step / steps_per_epoch`` (epochs elapsed) and ``T = epochs``:

    - ``constant``: 1;
    - ``step``: ``gamma ** #{m in milestones : floor(t) >= m}``;
    - ``cosine``: ``r + (1 - r) * (1 + cos(pi * t / T)) / 2`` with ``r = min_lr_ratio``
      (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts);
    - warm-up (any schedule): times ``min(1, (step + 1) / (warmup_epochs * steps_per_epoch))``
      (Goyal et al., "Accurate, Large Minibatch SGD", 2017).
    """
    t = step / steps_per_epoch
    if config.name == "step":
        factor = config.gamma ** sum(int(t) >= m for m in config.milestones)
    elif config.name == "cosine":
        r = config.min_lr_ratio
        factor = r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * t / epochs))
    else:
        factor = 1.0
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if warmup_steps > 0:
        factor *= min(1.0, (step + 1) / warmup_steps)
    return factor


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    """Set every group's learning rate to ``base_lr * lr_mult * factor``."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group["lr_mult"] * factor
