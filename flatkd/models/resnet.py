"""ResNet backbones with torchvision's parameter names.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, in the "v1.5" form that
torchvision ships (the stride of a bottleneck sits on its 3x3 conv). Parameter and buffer names
match ``torchvision.models.resnet*`` exactly (``conv1``, ``bn1``, ``layer1``..``layer4`` with
``N.conv1``/``N.bn1``/.../``N.downsample.0``/``N.downsample.1``, ``fc``), so an ImageNet or
Kinetics state dict written by torchvision loads without renaming (see :mod:`flatkd.models.weights`).

Beyond torchvision, the stage widths, the stem width and the number of input channels are free, so
one class builds the CPU-sized presets and the paper's ResNet-18/50 alike. The forward pass is split
into :meth:`ResNet.stem` and :meth:`ResNet.stage` so that the multi-exit wrapper can stop after any
stage.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

BlockName = Literal["basic", "bottleneck"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; output width ``planes``."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to ``4 * planes``, with a shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A four-stage ResNet: 7x7/2 conv stem + 3x3/2 max-pool, stages of residual blocks (the
    first block of stages 2-4 halves the resolution), global average pool, linear ``fc``.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and up).
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: ``planes`` per stage (a bottleneck stage outputs ``4 * planes`` channels).
        in_channels: input channels (3 for RGB and residuals, 2 for motion vectors).
        num_classes: outputs of ``fc``.
        stem_width: output channels of ``conv1``.

    Initialisation follows torchvision: Kaiming-normal (fan-out) convs, BatchNorm weight 1 and
    bias 0, PyTorch's default for ``fc``.
    """

    def __init__(
        self,
        block: BlockName,
        layers: tuple[int, int, int, int],
        widths: tuple[int, int, int, int],
        in_channels: int,
        num_classes: int,
        stem_width: int = 64,
    ):
        super().__init__()
        block_cls = BLOCKS[block]
        self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem_width
        self.stage_channels: tuple[int, ...] = ()
        for index, (blocks, planes) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if index == 0 else 2
            stage, inplanes = _make_stage(block_cls, inplanes, planes, blocks, stride)
            self.add_module(f"layer{index + 1}", stage)
            self.stage_channels += (inplanes,)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stem(self, x: Tensor) -> Tensor:
        """``conv1 -> bn1 -> relu -> maxpool``: [N, C_in, H, W] -> [N, stem_width, H/4, W/4]."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage ``index`` (0-based: ``layer1`` is 0)."""
        layer: nn.Module = getattr(self, f"layer{index + 1}")
        return layer(x)

    def head(self, x: Tensor) -> Tensor:
        """Global average pool and ``fc`` on the last stage's output."""
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index in range(4):
            x = self.stage(index, x)
        return self.head(x)


def _make_stage(
    block_cls: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, stride: int
) -> tuple[nn.Sequential, int]:
    out = planes * block_cls.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
        )
    modules = [block_cls(inplanes, planes, stride, downsample)]
    modules += [block_cls(out, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*modules), out
