"""Settings as dataclasses, read from and written to YAML strictly.

Every run setting lives in a (frozen or plain) dataclass owned by the module that uses it. This
module turns nested mappings (YAML, CLI overrides) into those dataclasses and back:

- a partial nested section overrides only the keys it names; the others keep the defaults the
  parent dataclass gives that section (not the nested class's own defaults);
- an unknown key is an error that names the key, where it was found and the closest valid key;
  a key an earlier version used names its replacement (the dataclass's ``REPLACED_KEYS``
  mapping, old key -> what replaced it), so an old recorded setting gets a one-line fix;
- a value of the wrong type is an error that names the key and the expected type;
- the resolved settings are written back as YAML, so a run directory records exactly what ran.

Supported field types: bool, int, float, str, ``Literal[...]``, ``X | None``, ``tuple[X, ...]``,
``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flatkd.errors import ConfigError
from flatkd.fileio import write_text

T = TypeVar("T")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 numbers: ``1e-3``, ``2E5`` and ``1.e-3`` are floats
    (YAML 1.1, which PyYAML implements, reads them as strings unless they have a dot and a
    signed exponent)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: Any) -> Any:
    """Parse YAML (a string or a stream) safely, with YAML 1.2 numbers (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys take the field defaults."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            replaced = getattr(cls, "REPLACED_KEYS", {})
            if key in replaced:
                raise ConfigError(f"{where}: '{key}' was replaced by {replaced[key]}; set that instead")
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(fields)})"
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        if isinstance(value, Mapping) and dataclasses.is_dataclass(default := _default(fields[key])):
            # a partial nested section keeps the parent's defaults for the keys it leaves out
            value = merge(to_dict(default), value)
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """Turn a dataclass (possibly nested) into plain YAML-friendly Python values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping (safe loader); an empty file is an empty mapping."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Read dataclass ``cls`` from a YAML file, strictly."""
    return from_dict(cls, read_yaml(path), where=str(path))


def dump(obj: Any) -> str:
    """YAML text of a dataclass."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write a dataclass as YAML, atomically."""
    write_text(path, dump(obj))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_keys(old: Any, new: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted key where two settings trees differ, with its value on each side (keys in
    sorted order; a key missing on one side has the value None there).

    >>> changed_keys({"seed": 0, "ics": {"epochs": 2, "lr": 1}}, {"seed": 7, "ics": {"epochs": 3, "lr": 1}})
    [('ics.epochs', 2, 3), ('seed', 0, 7)]
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted(set(old) | set(new))
        return [c for key in keys for c in changed_keys(old.get(key), new.get(key), f"{where}.{key}" if where else key)]
    return [] if old == new else [(where, old, new)]


def _default(field: dataclasses.Field[Any]) -> Any:
    """The value a dataclass field takes when its key is absent (``MISSING`` if required)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    raise TypeError(f"{where}: unsupported field type {tp!r}")
