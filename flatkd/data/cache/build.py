"""Building the modality cache: every video decoded once, in parallel, resumable.

Each video is one task (:func:`cache_video`): :meth:`flatkd.codec.reader.CompressedVideo.iter_gops`
decodes it once, GOP by GOP; the I-frame and the motion vectors and residuals of the P-frames are
converted to their stored form (:func:`flatkd.data.cache.storage.store_gop`) and appended to the
modalities' chunk files (:class:`flatkd.data.cache.chunks.ChunkWriter`) as each GOP is decoded, so
a worker holds a GOP at a time, whatever the video's length. The chunk files appear when complete;
``meta.json`` (the video's record) is written last. A video counts as done exactly when its ``meta.json`` exists, says
``ok`` and names the same source file size and modification time; anything else in its folder is
the leftover of an interrupted attempt and is deleted before the video is cached again. So a
killed build continues where it stopped, and finished videos are never redone.

A video the codec cannot read (corrupt, truncated, B-frames, no motion vectors, no P-frames) is
recorded as ``failed`` with the reason and skipped while the rest finish. ``cache.json`` (the
settings) is written first and a build with other settings into the same folder is refused;
``manifest.json`` (all records) is written when the build ends and is what readers open; it is
replaced atomically, so a build that adds videos to a finished cache and fails leaves the old
manifest, and the cache opens as it was.

Disk: before decoding, a build estimates what it will write (:func:`flatkd.data.cache.estimate.
estimate_cache`) and refuses if the disk has less free space. A write that fails all the same (a
full disk) raises :class:`~flatkd.errors.OutputWriteError` naming the path, after removing the
video's partial folder; videos finished before stay cached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av.error
import torch

from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache.chunks import ChunkWriter, write_failure
from flatkd.data.cache.estimate import estimate_cache, free_bytes
from flatkd.data.cache.layout import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    META_FILE,
    NPY_FORMAT,
    SETTINGS_FILE,
    SUFFIXES,
    VIDEOS_DIR,
    CacheSettings,
    video_dir,
)
from flatkd.data.cache.storage import storage_size, store_gop
from flatkd.data.claim import claim_directory
from flatkd.data.parallel import run_jobs
from flatkd.data.splits import Sample
from flatkd.errors import ConfigError, FlatkdError, InputFileError, OutputWriteError
from flatkd.fileio import atomic_path, read_json, write_json
from flatkd.progress import ProgressFactory, no_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheReport:
    """What a build did: videos cached now, videos found already cached, failures (key -> reason)."""

    cached: int
    kept: int
    failed: dict[str, str] = field(default_factory=dict)


def _source_signature(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a video's record atomically. Unlike :func:`flatkd.fileio.write_json` it does not
    fsync: on ext4 that forces the video's arrays to disk as well and makes the build wait on the
    disk; a killed process still leaves either no record or a whole one."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_failure(path, exc) from None


def chunk_file(folder: Path, modality: str) -> Path:
    """The chunk file of ``modality`` in a video's ``folder``."""
    return folder / f"{modality}{SUFFIXES[FORMAT_VERSION]}"


def layout_problem(types: str) -> str | None:
    """Why a video of picture types ``types`` cannot be sampled (cached or read on the fly), or ``None``."""
    if not types or types[0] != "I":
        return "the stream does not start with an I-frame"
    if set(types) - {"I", "P"}:
        return f"it has pictures other than I and P ({''.join(sorted(set(types) - {'I', 'P'}))})"
    if "P" not in types:
        return "it has no P-frames, so no motion vectors or residuals"
    return None


def cache_video(source: Path, key: str, root: Path, settings: CacheSettings) -> dict[str, Any]:
    """Decode ``source`` once and write its cache entry ``key`` under ``root``; returns the record.

    Raises :class:`InputFileError` (or the codec's errors) for a video that cannot be cached, and
    :class:`OutputWriteError` when a file cannot be written (the video's folder is removed).
    """
    if not source.is_file():
        raise InputFileError(f"{source}: no such video file")
    folder = video_dir(root, key)
    if folder.exists():
        shutil.rmtree(folder)
    signature = _source_signature(source)
    video = CompressedVideo(source)
    info = video.info
    problem = layout_problem(info.picture_types)
    if problem:
        raise InputFileError(f"{source}: cannot be cached: {problem}")
    out_hw = storage_size(info.height, info.width, settings.size)
    try:
        with contextlib.ExitStack() as files:
            writers = {m: files.enter_context(ChunkWriter(chunk_file(folder, m))) for m in settings.modalities}
            for gop in video.iter_gops(settings.accumulate):
                for modality, frames in store_gop(gop, out_hw, settings).items():
                    writers[modality].append(frames)
        record = {
            "status": "ok",
            "types": info.picture_types,
            "height": out_hw[0],
            "width": out_hw[1],
            "source_height": info.height,
            "source_width": info.width,
            "codec": info.codec,
            "bytes": sum(w.bytes for w in writers.values()),
            "modality_bytes": {m: w.bytes for m, w in writers.items()},
            "source": signature,
        }
        _write_record(folder / META_FILE, record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return record


def _cache_or_fail(source: Path, key: str, root: Path, settings: CacheSettings) -> tuple[str, dict[str, Any]]:
    """:func:`cache_video`, with an unreadable video turned into a ``failed`` record."""
    try:
        return key, cache_video(source, key, root, settings)
    except OutputWriteError:
        raise
    except (FlatkdError, av.error.FFmpegError) as exc:
        return key, {"status": "failed", "error": str(exc)}


def _is_done(root: Path, key: str, source: Path, settings: CacheSettings) -> bool:
    """Cached, and the source has not changed since (or has gone: then the cache is all there is)."""
    folder = video_dir(root, key)
    meta = folder / META_FILE
    if not meta.is_file() or not all(chunk_file(folder, m).is_file() for m in settings.modalities):
        return False
    try:
        record = read_json(meta)
    except InputFileError:
        return False
    unchanged = not source.is_file() or record.get("source") == _source_signature(source)
    return record.get("status") == "ok" and unchanged


def _worker_init() -> None:
    torch.set_num_threads(1)


def _collect(root: Path) -> dict[str, dict[str, Any]]:
    """Records of every video cached under ``root``, keyed by video."""
    videos = root / VIDEOS_DIR
    return {
        meta.parent.relative_to(videos).as_posix(): read_json(meta)
        for meta in sorted(videos.rglob(META_FILE))
    }


def pending(samples: Sequence[Sample], out: str | os.PathLike[str], settings: CacheSettings) -> list[Sample]:
    """The videos of ``samples`` (once each) that a build into ``out`` would cache: those not
    cached there yet, or whose source changed since."""
    unique = list({s.video: s for s in samples}.values())
    return [s for s in unique if not _is_done(Path(out), s.video, s.path, settings)]


def _claim(root: Path, settings: CacheSettings) -> None:
    """:func:`claim_directory` for a cache, refusing a format-1 cache in one line that says how to
    get a format-2 one."""
    record = root / SETTINGS_FILE
    if record.is_file() and read_json(record).get("format") == NPY_FORMAT:
        raise ConfigError(
            f"{root} is a format-1 cache, which flatkd reads but no longer writes: convert it by "
            f"building a format-2 cache into a new folder (`flatkd data cache DATASET_DIR --out NEW_DIR`) "
            f"and delete {root}"
        )
    claim_directory(root, SETTINGS_FILE, settings.record(), "a cache")


def _check_space(root: Path, todo: Sequence[Sample], settings: CacheSettings) -> None:
    """Refuse (one line) a build whose estimated size exceeds the free space at ``root``."""
    need = estimate_cache(todo, settings, sample_videos=2, max_gops=4).total
    free = free_bytes(root)
    if need > free:
        raise OutputWriteError(
            f"{root}: no space left for this build: it needs about {need / 1e9:.2f} GB for {len(todo)} "
            f"videos, the disk has {free / 1e9:.2f} GB free; free space or choose another --out"
        )


def build_cache(
    samples: Sequence[Sample],
    out: str | os.PathLike[str],
    settings: CacheSettings = CacheSettings(),
    *,
    jobs: int | None = None,
    progress: ProgressFactory = no_progress,
) -> CacheReport:
    """Cache every video of ``samples`` under ``out`` (see the module docstring).

    ``jobs`` worker processes (default: all CPUs; 1 works in this process). Returns what was done;
    the failures are also in ``manifest.json``. Raises :class:`OutputWriteError` when the disk
    is (or gets) too full.
    """
    root = Path(out)
    _claim(root, settings)
    unique = list({s.video: s for s in samples}.values())
    todo = pending(unique, root, settings)
    if todo:
        _check_space(root, todo, settings)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    results: dict[str, dict[str, Any]] = {}
    with progress(total=len(unique), desc="cache") as bar:
        bar.update(len(unique) - len(todo))
        work = [(s.path, s.video, root, settings) for s in todo]
        for key, record in run_jobs(_cache_or_fail, work, jobs, initializer=_worker_init):
            results[key] = record
            bar.update(1)
    failed = {key: record["error"] for key, record in results.items() if record["status"] != "ok"}
    records = _collect(root)
    records.update({key: results[key] for key in failed})
    manifest = {"format": FORMAT_VERSION, "settings": settings.record(), "videos": records}
    try:
        write_json(root / MANIFEST_FILE, manifest)
    except OSError as exc:
        raise write_failure(root / MANIFEST_FILE, exc) from None
    for key, error in failed.items():
        log.info("%s: not cached: %s", key, error)
    return CacheReport(cached=len(todo) - len(failed), kept=len(unique) - len(todo), failed=failed)
