"""The one settings resolver of every command that records its settings in a run.

A command's settings are one dataclass (``TrainConfig``, ``DistillConfig``, ``WiseConfig``,
``FlatnessSettings``) stored under a *section* of the run's ``config.yaml`` (``train.<modality>``,
``distill.<method>.<modality>``, ``wise.<method>``, ``landscape``). They are resolved from layers,
each merged key by key into the one below (:func:`flatkd.config.merge`), so a partial layer
(``ics: {epochs: 3}``) keeps the other keys of its section:

1. ``defaults``: the dataclass defaults, or what the command derives (e.g. distillation's IC
   settings from the ones ``flatkd train`` used);
2. ``recorded``: on ``--resume``, the settings the run recorded (:func:`recorded_section`);
3. ``--config FILE``: the dataclass's fields, or a whole run ``config.yaml`` whose section is
   taken (:func:`file_layer`), so a run's settings can be reused for another run;
4. the command's flags that were given (``None`` means not given);
5. ``--set KEY=VALUE`` (:func:`parse_overrides`; dotted keys, YAML values).

The ``--config`` and ``--set`` layers are validated against the dataclass on their own, so an
error names the file or option it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import yaml

from flatkd.config import changed_keys, from_dict, merge, read_yaml, yaml_load
from flatkd.errors import ConfigError, FlatkdError
from flatkd.runs.rundir import RunDir

T = TypeVar("T")

#: the top-level sections of a run's ``config.yaml`` (what tells one from a settings file)
RUN_SECTIONS = ("data", "train", "landscape", "distill", "wise")


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set`` pairs as one nested mapping (values parsed as YAML).

    >>> parse_overrides(["ics.optim.lr=0.01", "ics.epochs=3", "order=[mv, iframe]"])
    {'ics': {'optim': {'lr': 0.01}, 'epochs': 3}, 'order': ['mv', 'iframe']}
    >>> parse_overrides(['backbone.optim.lr=1e-3'])
    {'backbone': {'optim': {'lr': 0.001}}}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key or any(not name for name in key.split(".")):
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. backbone.optim.lr=0.01")
        try:
            value = yaml_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML") from None
        node = out
        *parents, leaf = key.split(".")
        for name in parents:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {pair!r}: {name} was already set to a value")
            node = child
        node[leaf] = value
    return out


def given(flags: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flags that were given: a flag left at ``None`` is not a layer, at any depth.

    >>> given({"epochs": 3, "lr": None, "genkd": {"epochs": None}, "ics": {"epochs": 2}})
    {'epochs': 3, 'ics': {'epochs': 2}}
    """
    out: dict[str, Any] = {}
    for key, value in (flags or {}).items():
        if isinstance(value, Mapping):
            value = given(value) or None
        if value is not None:
            out[key] = value
    return out


def recorded_section(run: RunDir, section: Sequence[str], *, resume: bool, what: str) -> dict[str, Any] | None:
    """The settings ``run`` recorded under ``section``, to continue with ``--resume``.

    Without ``resume``, a recorded section is an error: the stage it describes exists and
    continuing it needs ``--resume`` (``what`` completes "RUN already ...", e.g. "trains mv").
    """
    recorded = _subsection(run.read_config(), section)
    if recorded is not None and not resume:
        raise FlatkdError(f"{run.path} already {what}; pass --resume to continue it or choose a new --run")
    return recorded


def file_layer(cls: type, section: Sequence[str], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``--config`` layer: ``path`` holds the fields of ``cls`` directly, or it is a run's
    ``config.yaml`` (it has one of :data:`RUN_SECTIONS` that is not a field of ``cls``) and its
    ``section`` is taken. Validated against ``cls``."""
    data = read_yaml(path)
    fields = {field.name for field in dataclasses.fields(cls)}
    if any(key in RUN_SECTIONS and key not in fields for key in data):
        layer = _subsection(data, section)
        if layer is None:
            raise ConfigError(f"{path}: a run config without the section {'.'.join(section)}")
        where = f"{path} ({'.'.join(section)})"
    else:
        layer, where = data, str(path)
    from_dict(cls, layer, where=where)
    return layer


def resolve(
    cls: type[T],
    section: Sequence[str],
    *,
    defaults: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """``cls`` from the layers of the module docstring, lowest first."""
    settings = merge(defaults or {}, recorded or {})
    if config_path is not None:
        settings = merge(settings, file_layer(cls, section, config_path))
    settings = merge(settings, given(flags))
    from_set = parse_overrides(overrides)
    from_dict(cls, from_set, where="--set")
    settings = merge(settings, from_set)
    return from_dict(cls, settings, where=f"{'.'.join(section)} settings")


def differences(old: Any, new: Any) -> list[str]:
    """Every dotted key where two settings trees differ, as ``key: old -> new`` (sorted keys; a
    key missing on one side reads ``null`` there).

    >>> differences({"preset": "cpu-tiny", "seed": 0, "ics": {"epochs": 2, "lr": 1}},
    ...             {"preset": "resnet18", "seed": 7, "ics": {"epochs": 3, "lr": 1}})
    ['ics.epochs: 2 -> 3', 'preset: cpu-tiny -> resnet18', 'seed: 0 -> 7']
    """
    return [f"{key}: {_shown(before)} -> {_shown(after)}" for key, before, after in changed_keys(old, new)]


def _shown(value: Any) -> str:
    """A setting's value in a message: strings bare, everything else as JSON (``null``, ``[1, 2]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _subsection(data: Mapping[str, Any], section: Sequence[str]) -> Any:
    node: Any = data
    for name in section:
        if not isinstance(node, Mapping) or name not in node:
            return None
        node = node[name]
    return node
