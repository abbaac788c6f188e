"""Running independent jobs (clips to render, videos to cache) in worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

R = TypeVar("R")


def run_jobs(
    function: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Yield ``function(*job)`` for every job, in the order they finish.

    ``workers == 1`` runs them here, one after the other; otherwise in that many worker processes
    (``function``, ``initializer`` and the arguments must be picklable). Workers are spawned, not
    forked: a forked child inherits the parent's FFmpeg objects whose threads do not exist in it,
    and freeing one there (any garbage collection does) deadlocks. When the caller stops early
    or a job raises, jobs not yet started are cancelled and running ones are awaited, so no
    worker outlives the call.
    """
    if workers <= 1:
        for job in jobs:
            yield function(*job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
