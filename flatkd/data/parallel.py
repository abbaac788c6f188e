"""Running independent jobs (clips to render, videos to cache) in worker processes: see
:mod:`flatkd.workers` (kept here for the data package's callers)."""

from __future__ import annotations

from flatkd.workers import run_jobs

__all__ = ["run_jobs"]
