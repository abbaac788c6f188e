"""Per-modality ResNet backbones with internal classifiers (early exits).

>>> import torch
>>> from flatkd.models import build_model
>>> net = build_model("cpu-tiny", "mv", num_classes=10)
>>> [tuple(out.shape) for out in net(torch.zeros(2, 3, 2, 64, 64))]
[(2, 10), (2, 10), (2, 10), (2, 10)]
"""

from flatkd.models.exits import InternalClassifier
from flatkd.models.macs import exit_costs, exit_macs
from flatkd.models.multiexit import STAGE_NAMES, MultiExitNet
from flatkd.models.presets import (
    DEFAULT_EXITS,
    Preset,
    ResNetSpec,
    build_model,
    list_presets,
    register_preset,
    resolve_preset,
)
from flatkd.models.resnet import ResNet
from flatkd.models.weights import load_backbone_weights, read_state_dict

__all__ = [
    "DEFAULT_EXITS",
    "STAGE_NAMES",
    "InternalClassifier",
    "MultiExitNet",
    "Preset",
    "ResNet",
    "ResNetSpec",
    "build_model",
    "exit_costs",
    "exit_macs",
    "list_presets",
    "load_backbone_weights",
    "read_state_dict",
    "register_preset",
    "resolve_preset",
]
