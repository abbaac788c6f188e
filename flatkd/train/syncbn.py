"""BatchNorm with global-batch statistics across DDP processes, for CPU (gloo) training.

``torch.nn.SyncBatchNorm`` only runs on GPUs. This module does the same thing on any device with
two differentiable all-reduces (``torch.distributed.nn.functional.all_reduce``), so that training
on W processes with b clips each normalises exactly like one process with W*b clips:

    mu = sum_r sum_i x_ri / N,   var = sum_r sum_i (x_ri - mu)^2 / N,   N = sum_r n_r,
    y = (x - mu) / sqrt(var + eps) * gamma + beta,

with the running statistics updated from ``mu`` and the unbiased ``var * N / (N - 1)``, as
BatchNorm does. The sums are taken in float64 and reduced in a single all-reduce (sum, sum of
squares, count; ``var = E[x^2] - mu^2`` loses nothing at that precision). Gradients flow through the
reduction (the backward of a sum all-reduce is a sum all-reduce of the gradients), which is what
makes the result equal to single-process training.
Ioffe & Szegedy, "Batch Normalization", ICML 2015; Peng et al., "MegDet" (CVPR 2018) §3.2 for
cross-device BatchNorm.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _SumAllReduce(torch.autograd.Function):
    """Differentiable sum over processes: forward and backward are both sum all-reduces."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics are reduced over all processes of the default
    group; in eval mode, or without a process group, it is plain BatchNorm."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = (0, 2, 3)
        wide = x.double()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float64, device=x.device)
        sums = _SumAllReduce.apply(torch.cat([wide.sum(dims), wide.square().sum(dims), count]))
        channels = x.shape[1]
        n = sums[-1]
        mean = sums[:channels] / n
        var = (sums[channels : 2 * channels] / n - mean.square()).clamp_min(0)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        out = (x - mean.to(x.dtype)[None, :, None, None]) * scale[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:
            self._update_running_stats(mean.detach().to(x.dtype), (var * n / (n - 1)).detach().to(x.dtype))
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked += 1
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(unbiased_var, momentum)


def convert_to_global_bn(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (in place) by a
    :class:`GlobalBatchNorm2d` that shares its parameters, buffers and train/eval mode."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, _global_copy(child))
        else:
            convert_to_global_bn(child)
    return module


def _global_copy(bn: nn.BatchNorm2d) -> GlobalBatchNorm2d:
    new = GlobalBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
    return new.train(bn.training)
