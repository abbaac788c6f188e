"""Progress reporting without printing from library code.

Long-running library functions take a ``progress`` argument: a factory called as
``progress(total=N, desc="...")`` that returns a context manager with ``update(n)`` and
``set_postfix(**kw)``. ``tqdm.tqdm`` is such a factory, and the CLI passes it; the default,
:func:`no_progress`, reports nothing.
"""

from __future__ import annotations

from typing import Any, Protocol


class ProgressBar(Protocol):
    """The part of ``tqdm.tqdm`` that library code uses."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> Any: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> Any: ...


class ProgressFactory(Protocol):
    """Something that makes a :class:`ProgressBar`, e.g. ``tqdm.tqdm``."""

    def __call__(self, *, total: int | None = None, desc: str | None = None) -> ProgressBar: ...


class _NullBar:
    def update(self, n: float = 1) -> None:
        return None

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        return None

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def no_progress(*, total: int | None = None, desc: str | None = None) -> ProgressBar:
    """A :class:`ProgressFactory` that reports nothing."""
    return _NullBar()
