"""Cost of every exit in multiply-accumulates (MACs) per clip, split into backbone and head.

For exit k of a multi-exit network (all S segments of one clip):

- ``backbone[k]``: the input BatchNorm, the stem and the stages up to exit k's stage;
- ``head[k]``: exit k's own head alone (its internal classifier, or the final transform, if any,
  plus global pooling and ``fc`` for the last exit);
- the path to exit k costs ``backbone[k] + head[k]`` (:func:`exit_macs`).

A cascade that evaluates exits ``V`` of one network, the deepest being d, pays the backbone once up
to d and every visited head: ``backbone[d] + sum_{i in V} head[i]`` (how WISE charges it,
:func:`flatkd.distill.wise.step_costs`).

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on an actual forward pass, which counts the
matrix products of convolutions and linear layers (2 FLOPs per MAC) and ignores elementwise work
(BatchNorm, ReLU, pooling, additions): the usual convention of ptflops/fvcore and of the
torchvision model cards (ResNet-18 at 224 px: 1.81 G).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from flatkd.models.multiexit import MultiExitNet


def exit_costs(model: MultiExitNet, clip_shape: tuple[int, int, int, int]) -> tuple[list[int], list[int]]:
    """``(backbone, head)``: MACs of the backbone up to each exit and of each exit's head, for
    one clip of shape ``(S, C, H, W)``.

    The model's train/eval mode is restored afterwards; parameters and buffers are not changed.
    """
    parameter = next(model.parameters())
    clip = torch.zeros((1, *clip_shape), dtype=parameter.dtype, device=parameter.device)
    was_training = model.training
    model.eval()
    backbone, head = [], []
    try:
        with torch.no_grad():
            for index in range(model.num_exits):
                with _counting(into=backbone):
                    features = model.trunk(clip, model.exit_stage(index))
                with _counting(into=head):
                    model.exit_head(index, features, clip_shape[0])
    finally:
        model.train(was_training)
    return backbone, head


def exit_macs(model: MultiExitNet, clip_shape: tuple[int, int, int, int]) -> list[int]:
    """MACs of reaching each exit (backbone up to it plus its head) for one clip ``(S, C, H, W)``."""
    backbone, head = exit_costs(model, clip_shape)
    return [b + h for b, h in zip(backbone, head, strict=True)]


@contextlib.contextmanager
def _counting(into: list[int]) -> Iterator[None]:
    """Append the MACs of the block's matrix products to ``into``."""
    counter = FlopCounterMode(display=False)
    with counter:
        yield
    into.append(counter.get_total_flops() // 2)
