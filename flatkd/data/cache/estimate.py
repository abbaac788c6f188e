"""How many bytes a cache build will write, before writing any (``flatkd data cache --dry-run``).

The frame counts come from each video's packet headers (:func:`flatkd.codec.probe.scan`, no
decoding), so the part of a chunk file that does not depend on the picture content (its index,
:func:`flatkd.data.cache.chunks.index_bytes`) is exact. The compressed size of a frame is
measured: a few videos spread over the list (``sample_videos``) are decoded and their stored
frames compressed exactly as a build does (:func:`flatkd.data.cache.storage.store_gop`,
:func:`flatkd.data.cache.chunks.compressor`), at most ``max_gops`` GOPs each; every video's
chunks are then predicted from its frame counts and stored size at those bytes per stored pixel.
When every video is sampled whole the estimate is exact.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import av.error
import numpy as np

from flatkd.codec.probe import scan
from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache.chunks import compressor, index_bytes
from flatkd.data.cache.layout import CacheSettings
from flatkd.data.cache.storage import storage_size, store_gop
from flatkd.data.splits import Sample
from flatkd.errors import FlatkdError
from flatkd.modalities import Modality


@dataclass(frozen=True)
class CacheEstimate:
    """Predicted bytes per modality of a build of ``videos`` videos (``frames`` frames in all),
    measured on ``sampled`` of them (``sampled_frames`` frames)."""

    videos: int
    frames: int
    sampled: int
    sampled_frames: int
    bytes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or would, for a folder not made yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _counts(types: str) -> dict[Modality, int]:
    p_frames = types.count("P")
    return {"iframe": len(types) - p_frames, "mv": p_frames, "residual": p_frames}


def _measure(path: Path, settings: CacheSettings, max_gops: int | None) -> tuple[dict[str, int], dict[str, int]]:
    """Compressed chunk bytes and stored pixels (frames x height x width) per modality of the first
    ``max_gops`` GOPs."""
    video = CompressedVideo(path)
    out_hw = storage_size(video.info.height, video.info.width, settings.size)
    packer = compressor()
    sizes = dict.fromkeys(settings.modalities, 0)
    pixels = dict.fromkeys(settings.modalities, 0)
    for gop in islice(video.iter_gops(settings.accumulate), max_gops):
        for modality, stored in store_gop(gop, out_hw, settings).items():
            sizes[modality] += sum(len(packer.compress(np.ascontiguousarray(f).data)) for f in stored)
            pixels[modality] += stored.shape[0] * stored.shape[1] * stored.shape[2]
    return sizes, pixels


def estimate_cache(
    samples: Sequence[Sample],
    settings: CacheSettings,
    *,
    sample_videos: int = 16,
    max_gops: int | None = None,
) -> CacheEstimate:
    """The bytes a build of ``samples`` with ``settings`` writes (see the module docstring).

    Videos that cannot be read are left out (a build records them as failed and writes nothing).
    """
    types, pixels = {}, {}
    for sample in samples:
        try:
            info = scan(sample.path)[0]
        except (FlatkdError, av.error.FFmpegError, OSError):
            continue
        types[sample.video] = info.picture_types
        height, width = storage_size(info.height, info.width, settings.size)
        pixels[sample.video] = height * width
    readable = [
        s for s in samples if s.video in types and "P" in types[s.video] and set(types[s.video]) <= {"I", "P"}
    ]
    picks = readable[:: max(1, -(-len(readable) // sample_videos))] if sample_videos > 0 else []
    sizes = dict.fromkeys(settings.modalities, 0)
    stored = dict.fromkeys(settings.modalities, 0)
    sampled = []
    for sample in picks:
        try:
            measured, counted = _measure(sample.path, settings, max_gops)
        except (FlatkdError, av.error.FFmpegError):
            continue
        sampled.append(sample)
        for modality in settings.modalities:
            sizes[modality] += measured[modality]
            stored[modality] += counted[modality]
    rates = {m: sizes[m] / stored[m] if stored[m] else 0.0 for m in settings.modalities}
    totals = dict.fromkeys(settings.modalities, 0)
    for sample in readable:
        for modality, count in _counts(types[sample.video]).items():
            if modality in totals:
                totals[modality] += round(rates[modality] * count * pixels[sample.video]) + index_bytes(count)
    return CacheEstimate(
        videos=len(readable),
        frames=sum(len(types[s.video]) for s in readable),
        sampled=len(sampled),
        sampled_frames=sum(len(types[s.video]) for s in sampled),
        bytes=totals,
    )
