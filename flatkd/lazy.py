"""Package ``__init__``s whose names are imported on first use (PEP 562 module ``__getattr__``).

A package such as :mod:`flatkd.data` offers names from heavy submodules (torch datasets, the
cache builder) beside light ones (split lists, settings dataclasses). Importing its submodules
eagerly would import torch for any of them, so ``flatkd train --help`` would take seconds. With
:func:`lazy_exports` the package imports nothing up front; ``from flatkd.data import X`` (or
``flatkd.data.X``) imports the submodule defining ``X`` when ``X`` is first asked for, and
``flatkd.data.cache`` (a submodule) is imported when it is first asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__all__``, ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``), whose
    public names ``exports`` lists by the submodule defining them (relative to the package), for
    its ``__init__``: ``__all__, __getattr__, __dir__ = lazy_exports(__name__, {"splits":
    ("Sample",), ...})``. A name is imported once, then stored on the package; any other name is
    looked up as a submodule."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return sorted(where), __getattr__, __dir__
