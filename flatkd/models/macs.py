"""Cost of every exit in multiply-accumulates (MACs) per clip.

The cost of exit k is that of the path computed to reach it: the input BatchNorm and the backbone
up to exit k's stage, then exit k's own head (its internal classifier, or global pooling + ``fc``
for the last exit), for all S segments of one clip. It does not include the heads of earlier exits;
a cascade that evaluates exits 0..k of one network pays ``macs[k]`` plus the heads of exits < k.

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on an actual forward pass, which counts the
matrix products of convolutions and linear layers (2 FLOPs per MAC) and ignores elementwise work
(BatchNorm, ReLU, pooling, additions): the usual convention of ptflops/fvcore and of the
torchvision model cards (ResNet-18 at 224 px: 1.81 G).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from flatkd.models.multiexit import MultiExitNet


def exit_macs(model: MultiExitNet, clip_shape: tuple[int, int, int, int]) -> list[int]:
    """MACs of reaching each exit for one clip of shape ``(S, C, H, W)``.

    The model's train/eval mode is restored afterwards; parameters and buffers are not changed.
    """
    parameter = next(model.parameters())
    clip = torch.zeros((1, *clip_shape), dtype=parameter.dtype, device=parameter.device)
    was_training = model.training
    model.eval()
    macs = []
    try:
        with torch.no_grad():
            for index in range(model.num_exits):
                counter = FlopCounterMode(display=False)
                with counter:
                    model.forward_exit(clip, index)
                macs.append(counter.get_total_flops() // 2)
    finally:
        model.train(was_training)
    return macs
