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
- anything else missing, unexpected or of the wrong shape: :class:`InputFileError` naming the keys.
"""

from __future__ import annotations

import logging
import os
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


def load_backbone_weights(model: MultiExitNet, path: str | os.PathLike[str]) -> list[str]:
    """Load ``path`` into ``model.backbone`` (and ``model.data_bn``) following the module's policy.

    Returns one note per adaptation made (averaged stem, skipped classifier). Internal classifiers
    are never loaded from such files.
    """
    source = read_state_dict(path)
    input_bn = model.data_bn.state_dict() if model.data_bn is not None else {}
    target = {f"data_bn.{k}": v for k, v in input_bn.items()} | model.backbone.state_dict()
    notes: list[str] = []
    loaded: dict[str, Tensor] = {}
    bad_shape: list[str] = []
    for name, tensor in source.items():
        if name not in target:
            continue
        want = target[name]
        if tensor.shape == want.shape:
            loaded[name] = tensor
        elif name == "conv1.weight" and tensor.dim() == 4 and tensor.shape[1] == 3 and want.shape[1] != 3:
            loaded[name] = tensor.mean(dim=1, keepdim=True).expand_as(want).clone()
            notes.append(f"conv1 averaged over RGB and copied to {want.shape[1]} input channels")
        elif name.startswith("fc."):
            notes.append(f"{name} skipped ({tuple(tensor.shape)} in file, {tuple(want.shape)} in model)")
        else:
            bad_shape.append(f"{name} {tuple(tensor.shape)} vs {tuple(want.shape)}")
    unexpected = [n for n in source if n not in target]
    optional = ("fc.", "data_bn.")
    missing = [
        n
        for n in target
        if n not in loaded and not n.startswith(optional) and not n.endswith("num_batches_tracked")
    ]
    problems = [
        f"{label}: {_first(items)}"
        for label, items in (("wrong shape", bad_shape), ("missing", missing), ("unexpected", unexpected))
        if items
    ]
    if problems:
        raise InputFileError(f"{path}: does not fit this backbone ({'; '.join(problems)})")
    _assign(model, loaded)
    for note in notes:
        log.info("%s: %s", path, note)
    return notes


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
