"""I-frames read straight from the videos, no cache: what ``flatkd train --source videos`` uses.

:class:`VideoIFrames` answers the same questions as :class:`flatkd.data.cache.layout.ModalityCache`
that :class:`flatkd.data.clip_dataset.ClipDataset` asks (``key in store``, :meth:`entry`,
:meth:`read`), for the ``iframe`` modality only. The per-video records come from the packet headers
(:func:`flatkd.codec.probe.scan`, no decoding); a sample's I-frames are decoded with GOP-local
seeking (:meth:`flatkd.codec.reader.CompressedVideo.read`: each wanted GOP from its key frame, one
frame decoded per GOP) and converted exactly as a cache build stores them
(:func:`flatkd.data.cache.storage.store_iframe` at the same storage size), so a dataset on this
source gives the very tensors it gives on a cache of that size.

Only I-frames: decoding motion vectors and residuals on the fly costs a decode of every frame up to
the sampled one, 3-16x the cache's time per sample (measured in issue 14), too slow to feed a GPU;
an I-frame sample decodes one frame per segment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import av.error
import numpy as np

from flatkd.codec.probe import scan
from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache.build import layout_problem
from flatkd.data.cache.layout import CacheSettings, VideoEntry
from flatkd.data.cache.storage import storage_size, store_iframe
from flatkd.data.splits import Sample
from flatkd.errors import ConfigError, FlatkdError
from flatkd.modalities import Modality

#: what this source serves
MODALITIES_FROM_VIDEOS: tuple[Modality, ...] = ("iframe",)


def iframes_only(modalities: Sequence[str]) -> None:
    """Refuse, in one line, modalities other than ``iframe`` read from the videos."""
    other = [m for m in modalities if m not in MODALITIES_FROM_VIDEOS]
    if other:
        raise ConfigError(
            f"--source videos reads I-frames only, not {', '.join(other)} (decoding motion vectors and "
            "residuals on the fly is too slow to train on): train those from the cache (`flatkd data "
            "cache DATASET_DIR`, then drop --source)"
        )


class VideoIFrames:
    """The I-frames of ``samples``' videos, stored at ``size`` like a cache built with
    ``--size size`` (``None``: the source size); see the module docstring.

    A video whose headers cannot be read, or that has no P-frames to sample, gets a ``failed``
    record with the reason (the dataset leaves it out with a warning, as for a cache).
    """

    def __init__(self, samples: Sequence[Sample], size: int | None = CacheSettings.size) -> None:
        self.root = Path(os.path.commonpath([str(s.path.parent) for s in samples])) if samples else Path()
        self.modalities = MODALITIES_FROM_VIDEOS
        self._paths = {s.video: s.path for s in samples}
        self._entries = {s.video: VideoEntry(s.video, self._record(s.path, size)) for s in samples}

    @staticmethod
    def _record(path: Path, size: int | None) -> dict[str, object]:
        try:
            info = scan(path)[0]
        except (FlatkdError, av.error.FFmpegError, OSError) as exc:
            return {"status": "failed", "error": str(exc)}
        problem = layout_problem(info.picture_types)
        if problem:
            return {"status": "failed", "error": f"{path}: cannot be sampled: {problem}"}
        height, width = storage_size(info.height, info.width, size)
        return {"status": "ok", "types": info.picture_types, "height": height, "width": width}

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def entry(self, key: str) -> VideoEntry:
        """The record of video ``key`` (``KeyError`` for a video not in ``samples``)."""
        return self._entries[key]

    def read(self, key: str, modality: Modality, frames: np.ndarray, top: int, height: int) -> np.ndarray:
        """Rows ``top .. top + height - 1`` of the stored I-frames of GOPs ``frames`` of video
        ``key``, as ``[len(frames), height, W, 3]`` uint8 (what :meth:`ModalityCache.read` returns)."""
        iframes_only([modality])
        entry = self._entries[key]
        starts = np.flatnonzero(np.frombuffer(entry.types.encode("ascii"), dtype=np.uint8) == ord("I"))
        decoded = CompressedVideo(self._paths[key]).read(starts[np.asarray(frames)])
        return store_iframe(decoded.iframes, entry.size)[:, top : top + height]
