"""Progress reporting without printing from library code.

Long-running library functions take a ``progress`` argument: a factory called as
``progress(total=N, desc="...")`` that returns a context manager with ``update(n)`` and
``set_postfix(**kw)``. ``tqdm.tqdm`` is such a factory, and the CLI passes it; the default,
:func:`no_progress`, reports nothing. :func:`logged_stage` logs (``logging``, INFO) where a stage
starts and ends, for logs that have no progress bars.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def logged_stage(log: logging.Logger, what: str, detail: str = "") -> Iterator[None]:
    """Log (INFO) ``"WHAT: started (DETAIL)"`` when the block starts and ``"WHAT: done in N s"``
    when it finishes, so a log without progress bars (a batch job, ``RUN/train.log``) shows each
    stage, method and measurement; a block that raises logs no finish (its error says why)."""
    log.info("%s: started%s", what, f" ({detail})" if detail else "")
    started = time.perf_counter()
    yield
    log.info("%s: done in %s", what, format_seconds(time.perf_counter() - started))


def format_seconds(seconds: float) -> str:
    """``"0.4 s"``, ``"41 s"``, ``"12 min 5 s"``, ``"2 h 3 min"``: a duration for a log line."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 600:
        return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
