"""Single-process or DDP execution behind one small interface.

``flatkd train`` started by ``torchrun --nproc_per_node N`` finds ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK`` in the environment and joins the process group (NCCL on CUDA, gloo on CPU). Each
process reads its own shard of the data (``DistributedSampler``), the gradients are averaged over
the processes after every backward pass (:meth:`Dist.average_gradients`, one flat all-reduce: what
``DistributedDataParallel`` computes, for any training step, including those whose backward passes
do not go through one module's ``forward``), and only rank 0 writes files. With ``sync_bn`` BatchNorm layers use the global batch's statistics
(``torch.nn.SyncBatchNorm`` on CUDA, :class:`flatkd.train.syncbn.GlobalBatchNorm2d` elsewhere), so
N processes with batch b train like one process with batch N*b.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from flatkd.errors import ConfigError
from flatkd.train.syncbn import convert_to_global_bn


@dataclasses.dataclass(frozen=True)
class Dist:
    """Where this process runs: its rank, the world size and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over all processes (float64 on the CPU, for exact small counts)."""
        return self.all_reduce(values.to(self.device, torch.float64)).cpu()

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` replaced (in place, on its device and in its dtype) by its sum over the
        processes, and returned; every process gets the same bits. Alone: ``tensor`` unchanged."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each gradient by its mean over the processes (one all-reduce of all of them
        flattened; every process must hold gradients for the same parameters)."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, mean in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(mean.view_as(grad))

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm running statistics), as DDP does."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


#: a single process on the CPU (the default wherever a ``Dist`` is expected)
LOCAL = Dist()


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a config error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (use device: auto)")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def init_from_env(device_choice: str = "auto") -> Dist:
    """Join the process group torchrun describes in the environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_choice)
    if world_size <= 1:
        return Dist(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def synchronise_batchnorm(module: nn.Module, env: Dist) -> None:
    """Under DDP, make ``module``'s BatchNorm layers (in place, parameters and buffers shared)
    normalise with global-batch statistics: ``nn.SyncBatchNorm`` on CUDA, else
    :class:`~flatkd.train.syncbn.GlobalBatchNorm2d`."""
    if not env.distributed:
        return
    if env.device.type == "cuda":
        for name, child in module.named_children():
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    else:
        convert_to_global_bn(module)
