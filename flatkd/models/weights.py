"""Loading user-supplied initial weights (ImageNet, Kinetics) into a backbone. Never downloads.

Accepted files: safetensors, or a plain state dict saved with ``torch.save`` (read with
``torch.load(weights_only=True)``, so nothing is unpickled). A checkpoint that wraps the state dict
under ``"state_dict"`` or ``"model"`` is unwrapped, and the prefixes ``module.`` (DataParallel/DDP),
``base_model.`` (CoViAR) and ``backbone.`` (flatkd) are stripped.

Policy, key by key against the backbone's torchvision-style names:

- same name and shape: loaded;
- ``conv1.weight`` of an RGB file into the 2-channel motion-vector stem: the RGB kernels are
  averaged over their input channels and the mean is copied to both channels, the cross-modality
  initialisation of Wang et al., "Temporal Segment Networks", ECCV 2016, §3.2 (CoViAR instead
  re-initialises this layer);
- ``fc.*`` of another class count: skipped (the classifier keeps its fresh initialisation);
- ``data_bn.*`` (the input BatchNorm of MV/residual networks) is loaded when the file has it and
  kept at its identity initialisation otherwise, as are ``num_batches_tracked`` counters that old
  torchvision files lack;
- anything else missing, unexpected or of the wrong shape: one :class:`InputFileError` naming the
  first keys of each kind (a key of the wrong shape is not also called missing) and the
  registered presets the file would fit, e.g. "these weights fit --preset resnet18" for a
  torchvision ResNet-18 state dict offered to the default ``cpu-tiny``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from flatkd.errors import InputFileError
from flatkd.fileio import load_tensors
from flatkd.models.multiexit import MultiExitNet

log = logging.getLogger(__name__)

_PREFIXES = ("module.", "base_model.", "backbone.")
_WRAPPER_KEYS = ("state_dict", "model")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a weights file (safetensors or a plain torch state dict), unwrapped and de-prefixed."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state: object = load_tensors(path)
    else:
        if not path.is_file():
            raise InputFileError(f"{path}: no such weights file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or unsafe files
            raise InputFileError(
                f"{path}: not a plain state dict readable with weights_only=True ({type(exc).__name__});"
                " convert it to safetensors"
            ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputFileError(f"{path}: expected a mapping of parameter names to tensors")
    return {_strip_prefixes(name): tensor for name, tensor in state.items()}


@dataclass
class _Fit:
    """How a file's tensors map onto one backbone: what loads, notes on adaptations, problems."""

    loaded: dict[str, Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _fit(source: dict[str, Tensor], model: MultiExitNet) -> _Fit:
    """Match ``source`` against ``model``'s input BatchNorm and backbone (module policy)."""
    input_bn = model.data_bn.state_dict() if model.data_bn is not None else {}
    target = {f"data_bn.{k}": v for k, v in input_bn.items()} | model.backbone.state_dict()
    fit = _Fit()
    bad_shape: list[str] = []
    for name, tensor in source.items():
        if name not in target:
            continue
        want = target[name]
        if tensor.shape == want.shape:
            fit.loaded[name] = tensor
        elif name == "conv1.weight" and _rgb_stem_of(tensor, want):
            fit.loaded[name] = tensor.mean(dim=1, keepdim=True).expand_as(want).clone()
            fit.notes.append(f"conv1 averaged over RGB and copied to {want.shape[1]} input channels")
        elif name.startswith("fc."):
            fit.notes.append(f"{name} skipped ({tuple(tensor.shape)} in file, {tuple(want.shape)} in model)")
        else:
            bad_shape.append(f"{name} {tuple(tensor.shape)} vs {tuple(want.shape)}")
    unexpected = [n for n in source if n not in target]
    optional = ("fc.", "data_bn.")
    missing = [  # a key of the wrong shape is reported as that, not also as missing
        n
        for n in target
        if n not in source and not n.startswith(optional) and not n.endswith("num_batches_tracked")
    ]
    fit.problems = [
        f"{label}: {_first(items)}"
        for label, items in (("wrong shape", bad_shape), ("missing", missing), ("unexpected", unexpected))
        if items
    ]
    return fit


def _rgb_stem_of(tensor: Tensor, want: Tensor) -> bool:
    """Whether ``tensor`` is an RGB stem that averages into the stem ``want`` of other input channels."""
    return (
        tensor.dim() == 4 and tensor.shape[1] == 3 and want.shape[1] != 3
        and tensor.shape[0] == want.shape[0] and tensor.shape[2:] == want.shape[2:]
    )  # fmt: skip


def fitting_presets(source: dict[str, Tensor], modality: str) -> list[str]:
    """The registered presets whose ``modality`` backbone ``source`` loads into (built on the meta
    device, so nothing is allocated)."""
    from flatkd.models.presets import build_model, list_presets  # presets build what this loads into

    fits = []
    for name in list_presets():
        with torch.device("meta"):
            model = build_model(name, modality, 2)
        if not _fit(source, model).problems:
            fits.append(name)
    return fits


def load_backbone_weights(
    model: MultiExitNet, path: str | os.PathLike[str], preset: str | None = None
) -> list[str]:
    """Load ``path`` into ``model.backbone`` (and ``model.data_bn``) following the module's policy.

    Returns one note per adaptation made (averaged stem, skipped classifier). Internal classifiers
    are never loaded from such files. A file that does not fit is one :class:`InputFileError`
    naming the first keys of each kind of problem and the presets it would fit (``preset``: the
    one ``model`` was built from, for the message).
    """
    source = read_state_dict(path)
    fit = _fit(source, model)
    if fit.problems:
        fits = [name for name in fitting_presets(source, model.modality) if name != preset]
        hint = (
            f"these weights fit --preset {' or --preset '.join(fits)}" if fits
            else "no built-in preset fits them (see `flatkd train --help`, --preset)"
        )
        which = f"the {preset} {model.modality} backbone" if preset else f"this {model.modality} backbone"
        raise InputFileError(f"{path}: does not fit {which} ({'; '.join(fit.problems)}); {hint}")
    _assign(model, fit.loaded)
    for note in fit.notes:
        log.info("%s: %s", path, note)
    return fit.notes


def _assign(model: MultiExitNet, loaded: dict[str, Tensor]) -> None:
    input_bn = {k.removeprefix("data_bn."): v for k, v in loaded.items() if k.startswith("data_bn.")}
    if model.data_bn is not None:
        model.data_bn.load_state_dict(input_bn, strict=False)
    model.backbone.load_state_dict(
        {k: v for k, v in loaded.items() if not k.startswith("data_bn.")}, strict=False
    )


def _strip_prefixes(name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _first(items: list[str], shown: int = 3) -> str:
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
