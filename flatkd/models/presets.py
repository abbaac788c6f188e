"""Named model presets (a small timm-like registry) and the model factory.

A preset names a ResNet shape, possibly different per modality. Built in:

============  =====================================================================
``cpu-tiny``   basic blocks (1,1,1,1), widths 16/32/64/128: trains on the synthetic set
               in minutes on 2 CPU cores at 96-112 px
``cpu-small``  basic blocks (2,2,2,2), widths 32/64/128/256: a mid-sized network
``resnet18``   torchvision ResNet-18 (basic, (2,2,2,2), widths 64..512)
``resnet34``   torchvision ResNet-34 (basic, (3,4,6,3))
``resnet50``   torchvision ResNet-50 (bottleneck, (3,4,6,3))
``paper``      the paper's choice (CoViAR variant): I-frame ResNet-50, MV and residual ResNet-18
============  =====================================================================

:func:`register_preset` adds more. Internal classifiers sit after the stages named in ``exits``
(default ``layer1, layer2, layer3``: the paper's four exits per modality); each IC's convolution
is as wide as its stage's ``planes`` (the block width before a bottleneck's 4x expansion).

The registry imports no torch (the CLI lists the presets in its help); :func:`build_model` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from flatkd.errors import ConfigError
from flatkd.modalities import CHANNELS

if TYPE_CHECKING:
    from flatkd.models.multiexit import MultiExitNet
    from flatkd.models.resnet import BlockName

DEFAULT_EXITS = ("layer1", "layer2", "layer3")


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """The shape of one backbone (see :class:`flatkd.models.resnet.ResNet`)."""

    block: BlockName
    layers: tuple[int, int, int, int]
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_width: int = 64


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named backbone choice: ``default`` for every modality unless ``per_modality`` says
    otherwise."""

    description: str
    default: ResNetSpec
    per_modality: Mapping[str, ResNetSpec] = dataclasses.field(default_factory=dict)

    def spec(self, modality: str) -> ResNetSpec:
        return self.per_modality.get(modality, self.default)


_RESNET18 = ResNetSpec("basic", (2, 2, 2, 2))
_RESNET50 = ResNetSpec("bottleneck", (3, 4, 6, 3))
_PRESETS: dict[str, Preset] = {
    "cpu-tiny": Preset(
        "CPU-sized: basic blocks (1,1,1,1), widths 16-128",
        ResNetSpec("basic", (1, 1, 1, 1), (16, 32, 64, 128), stem_width=16),
    ),
    "cpu-small": Preset(
        "mid-sized: basic blocks (2,2,2,2), widths 32-256",
        ResNetSpec("basic", (2, 2, 2, 2), (32, 64, 128, 256), stem_width=32),
    ),
    "resnet18": Preset("ResNet-18 (torchvision layout)", _RESNET18),
    "resnet34": Preset("ResNet-34 (torchvision layout)", ResNetSpec("basic", (3, 4, 6, 3))),
    "resnet50": Preset("ResNet-50 (torchvision layout)", _RESNET50),
    "paper": Preset(
        "the paper's: I-frame ResNet-50, MV/residual ResNet-18", _RESNET18, {"iframe": _RESNET50}
    ),
}


def register_preset(name: str, preset: Preset) -> None:
    """Add a preset; re-registering an existing name is an error."""
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} already registered")
    _PRESETS[name] = preset


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    return {name: preset.description for name, preset in _PRESETS.items()}


def resolve_preset(name: str, modality: str) -> ResNetSpec:
    """The backbone shape preset ``name`` uses for ``modality``."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown model preset '{name}' (available: {', '.join(_PRESETS)})")
    if modality not in CHANNELS:
        expected = ", ".join(CHANNELS)
        raise ConfigError(f"unknown modality '{modality}' (expected one of: {expected})")
    return _PRESETS[name].spec(modality)


def build_model(
    preset: str, modality: str, num_classes: int, exits: Sequence[str] = DEFAULT_EXITS
) -> MultiExitNet:
    """A freshly initialised multi-exit network (seed torch first for reproducible weights).

    ``exits`` names the stages followed by an internal classifier (a subset of ``layer1`` ..
    ``layer3``); the final ``fc`` is always the last exit.
    """
    from flatkd.models.multiexit import STAGE_NAMES, MultiExitNet  # here: the registry imports no torch
    from flatkd.models.resnet import ResNet

    spec = resolve_preset(preset, modality)
    valid = STAGE_NAMES[:3]
    unknown = [e for e in exits if e not in valid]
    if unknown:
        raise ConfigError(
            f"unknown exit stage '{unknown[0]}' (internal classifiers go after: {', '.join(valid)})"
        )
    stages = tuple(sorted({valid.index(e) for e in exits}))
    backbone = ResNet(
        spec.block, spec.layers, spec.widths, CHANNELS[modality], num_classes, spec.stem_width
    )
    return MultiExitNet(backbone, modality, stages, tuple(spec.widths[s] for s in stages))
