"""Package ``__init__``s whose names are imported on first use (PEP 562 module ``__getattr__``).

A package such as :mod:`flatkd.data` offers names from heavy submodules (torch datasets, the
cache builder) beside light ones (split lists, settings dataclasses). Importing it eagerly would
import torch for any of them, so ``flatkd train --help`` would take seconds. With
:func:`lazy_exports` the package imports nothing up front; ``from flatkd.data import X`` (or
``flatkd.data.X``) imports the submodule defining ``X`` when ``X`` is first asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``), whose public names
    ``exports`` maps to the module defining each: ``__getattr__, __dir__ = lazy_exports(__name__,
    {...})`` in its ``__init__``. A name is imported once, then stored on the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
