"""Per-modality ResNet backbones with internal classifiers (early exits).

>>> import torch
>>> from flatkd.models import build_model
>>> net = build_model("cpu-tiny", "mv", num_classes=10)
>>> [tuple(out.shape) for out in net(torch.zeros(2, 3, 2, 64, 64))]
[(2, 10), (2, 10), (2, 10), (2, 10)]

The names are imported from their modules on first use: ``list_presets`` imports no torch.
"""

from flatkd.lazy import lazy_exports

# name -> the module defining it, imported on first use (``list_presets`` imports no torch)
_EXPORTS = {
    "DEFAULT_EXITS": "flatkd.models.presets",
    "STAGE_NAMES": "flatkd.models.multiexit",
    "InternalClassifier": "flatkd.models.exits",
    "MultiExitNet": "flatkd.models.multiexit",
    "Preset": "flatkd.models.presets",
    "ResNet": "flatkd.models.resnet",
    "ResNetSpec": "flatkd.models.presets",
    "build_model": "flatkd.models.presets",
    "exit_costs": "flatkd.models.macs",
    "exit_macs": "flatkd.models.macs",
    "list_presets": "flatkd.models.presets",
    "load_backbone_weights": "flatkd.models.weights",
    "read_state_dict": "flatkd.models.weights",
    "register_preset": "flatkd.models.presets",
    "resolve_preset": "flatkd.models.presets",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
