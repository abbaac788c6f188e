"""Running independent jobs (clips to render, videos to cache or transcode) in worker processes
that never outlive their parent.

Workers are spawned, not forked: a forked child inherits the parent's FFmpeg objects whose threads
do not exist in it, and freeing one there (any garbage collection does) deadlocks.

A worker of :func:`run_jobs` watches its parent: when the parent is gone (``kill -9``, or a signal
that ended it before it could shut the pool down) the worker exits within
:data:`PARENT_POLL_S` seconds, so no orphan keeps decoding, and the multiprocessing resource
tracker, which lives as long as some process holds its pipe, ends with the last worker. When the
parent stops early (an exception, Ctrl-C, SIGTERM turned into an exception by the CLI) jobs not yet
started are cancelled and the running workers are terminated.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

R = TypeVar("R")

#: how often a worker checks that its parent is still alive (seconds)
PARENT_POLL_S = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: nobody will read what this worker makes


def _worker_start(parent: int, initializer: Callable[[], None] | None) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), name="flatkd-parent-watch", daemon=True).start()
    if initializer is not None:
        initializer()


def run_jobs(
    function: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Yield ``function(*job)`` for every job, in the order they finish.

    ``workers == 1`` runs them here, one after the other; otherwise in that many spawned worker
    processes (``function``, ``initializer`` and the arguments must be picklable) that end with
    their parent (module docstring). When the caller stops early or a job raises, jobs not yet
    started are cancelled and running workers are stopped, so no worker outlives the call.
    """
    if workers <= 1:
        for job in jobs:
            yield function(*job)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_start, initargs=(os.getpid(), initializer)
    )
    finished = False
    try:
        futures = [pool.submit(function, *job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
        finished = True
    finally:
        if not finished:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
