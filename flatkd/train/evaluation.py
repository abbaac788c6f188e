"""Logits of every exit on a dataset, and the per-exit metrics derived from them.

Evaluation runs in eval mode (running BatchNorm statistics) over the dataset in order; under DDP
each process takes every ``world_size``-th clip and the pieces are gathered back into dataset
order, so every process returns the full result.

A dataset of several views per clip (:class:`flatkd.data.views.ViewDataset`: inputs
``[V, S, C, H, W]``) is evaluated in chunks of ``eval_batch_size`` views, and each clip's logits
are the mean over its views (CoViAR's ``test.py`` averages the scores of all segments and crops;
the network already averages over segments).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from flatkd.models import MultiExitNet
from flatkd.progress import ProgressFactory, no_progress
from flatkd.train.config import TrainConfig
from flatkd.train.distributed import LOCAL, Dist


def to_device(clips: Tensor, device: torch.device, channels_last: bool = False) -> Tensor:
    """``clips`` ``[..., C, H, W]`` on ``device`` (asynchronously from pinned memory); with
    ``channels_last`` every frame is stored NHWC (strides ``(..., 1, W*C, C)``), which the network's
    ``flatten(0, 1)`` keeps, so its convolutions see channels-last inputs without a copy."""
    clips = clips.to(device, non_blocking=True)
    if not channels_last:
        return clips
    return clips.flatten(0, -4).contiguous(memory_format=torch.channels_last).view(clips.shape)


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``bf16`` is set; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


@torch.no_grad()
def predict(
    model: MultiExitNet,
    dataset: Dataset,
    config: TrainConfig,
    *,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    desc: str = "evaluate",
    views: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Logits ``[N, n_exits, K]`` (float32, CPU) and labels ``[N]`` (int64) of every clip.

    ``dataset`` yields ``(inputs: dict[modality, [S, C, H, W]], label)``, or ``[V, S, C, H, W]``
    for ``views`` views per clip (logits averaged over them, module docstring); the model reads
    ``inputs[model.modality]``. Batch size, loader workers, bf16 and the memory layout come from
    ``config`` (``eval_batch_size``, ``workers``, ``bf16``, ``channels_last``). The model's
    train/eval mode is restored.
    """
    batch_size, workers = config.eval_batch_size, config.workers
    run = functools.partial(_exit_logits, model, device=env.device, bf16=config.bf16, channels_last=config.channels_last)
    indices = list(range(env.rank, len(dataset), env.world_size))  # type: ignore[arg-type]
    clips_per_batch = max(1, batch_size // (views or 1))
    loader = DataLoader(
        Subset(dataset, indices), batch_size=clips_per_batch, num_workers=workers, pin_memory=env.device.type == "cuda"
    )
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        with progress(total=len(loader), desc=desc) as bar:
            for inputs, label in loader:
                x = inputs[model.modality]
                if views is None:
                    logits.append(run(x))
                else:
                    chunks = x.flatten(0, 1).split(batch_size)
                    flat = torch.cat([run(chunk) for chunk in chunks])
                    logits.append(flat.view(x.shape[0], views, *flat.shape[1:]).mean(dim=1))
                labels.append(label)
                bar.update(1)
    finally:
        model.train(was_training)
    local = (torch.tensor(indices, dtype=torch.long), _cat(logits), _cat(labels).long())
    pieces = env.gather(local)
    order = torch.cat([p[0] for p in pieces]).argsort()
    return torch.cat([p[1] for p in pieces])[order], torch.cat([p[2] for p in pieces])[order]


def _exit_logits(
    model: MultiExitNet, clips: Tensor, *, device: torch.device, bf16: bool, channels_last: bool
) -> Tensor:
    """``[B, S, C, H, W]`` -> float32 CPU logits ``[B, E, K]`` of every exit."""
    with autocast(device, bf16):
        exits = model(to_device(clips, device, channels_last))
    return torch.stack(exits, dim=1).float().cpu()


def exit_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Top-1 accuracy of every exit: ``[N, E, K]``, ``[N]`` -> ``[E]``."""
    return (logits.argmax(dim=-1) == labels[:, None]).double().mean(dim=0)


def exit_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean label cross-entropy of every exit: ``[N, E, K]``, ``[N]`` -> ``[E]``."""
    targets = labels[:, None].expand(-1, logits.shape[1])
    return F.cross_entropy(logits.transpose(1, 2).double(), targets, reduction="none").mean(dim=0)


def _cat(tensors: list[Tensor]) -> Tensor:
    return torch.cat(tensors) if tensors else torch.empty(0)
