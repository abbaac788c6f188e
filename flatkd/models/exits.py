"""Internal classifiers (early exits) attached after a backbone stage.

Each internal classifier (IC) follows the paper's design (DESIGN.md §4): a 3x3 convolution with
BatchNorm and ReLU, adaptive average pooling to a fixed 4x4 grid (so the IC does not depend on the
input resolution), flatten, and one linear layer. Early exits in this form go back to
Teerapittayanon et al., "BranchyNet", ICPR 2016, and Kaya et al., "Shallow-Deep Networks", ICML 2019.
"""

from __future__ import annotations

from torch import Tensor, nn

#: spatial grid the IC pools its feature map to before the linear layer
POOL_GRID = 4


class InternalClassifier(nn.Module):
    """``conv3x3(in -> width) -> BN -> ReLU -> avgpool(4x4) -> flatten -> linear(16*width -> K)``.

    Args:
        in_channels: channels of the stage output it reads.
        width: channels of its convolution.
        num_classes: K.
    """

    def __init__(self, in_channels: int, width: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d((POOL_GRID, POOL_GRID))
        self.fc = nn.Linear(width * POOL_GRID * POOL_GRID, num_classes)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """[N, in_channels, H, W] -> logits [N, K]."""
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))
