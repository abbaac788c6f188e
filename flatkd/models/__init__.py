"""Per-modality ResNet backbones with internal classifiers (early exits).

>>> import torch
>>> from flatkd.models import build_model
>>> net = build_model("cpu-tiny", "mv", num_classes=10)
>>> [tuple(out.shape) for out in net(torch.zeros(2, 3, 2, 64, 64))]
[(2, 10), (2, 10), (2, 10), (2, 10)]

The names are imported from their modules on first use: ``list_presets`` imports no torch.
"""

from flatkd.lazy import lazy_exports

# the names by the submodule defining each, imported on first use:
# ``list_presets`` imports no torch
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "exits": ("InternalClassifier",),
        "macs": ("exit_costs", "exit_macs"),
        "multiexit": ("MultiExitNet", "STAGE_NAMES"),
        "presets": (
            "DEFAULT_EXITS", "Preset", "ResNetSpec", "build_model", "list_presets",
            "register_preset", "resolve_preset",
        ),
        "resnet": ("ResNet",),
        "weights": ("load_backbone_weights", "read_state_dict"),
    },
)
