"""The modality cache on disk, and reading it.

A cache holds, for every video, exactly what TSN training on compressed video reads (CoViAR,
Wu et al. CVPR 2018, ``dataset.py``): each segment picks one P-frame and the I-frame of its GOP. So
the cache keeps the I-frame of every GOP and the motion vectors and residual of every P-frame (the
RGB of P-frames, never used, is not stored), resized to a storage size chosen at build time::

    CACHE/cache.json                      format version and settings: {"format", "size", "accumulate"}
    CACHE/manifest.json                   per-video records (written when a build finishes)
    CACHE/videos/<key>/iframe.npy         uint8 [G, H, W, 3]  RGB of the G I-frames
    CACHE/videos/<key>/mv.npy             int8  [P, H, W, 2]  (dx, dy) = dst - src, storage pixels
    CACHE/videos/<key>/residual.npy       int8  [P, H, W, 3]  RGB residual
    CACHE/videos/<key>/meta.json          the video's record; written last, it marks the video done

``<key>`` is the sample's list entry without suffix (``Class/v_Class_g08_c01``). The ``.npy`` files
are plain NumPy arrays, read through memory maps. Motion vectors are scaled with the image and
clipped to int8, residuals clipped to int8: CoViAR's normalisation clips motion at +-20 pixels and
residuals at [-128, 127] anyway (DESIGN.md §3), so nothing the networks see is lost.

Readers that want a few frames of many videos (the training loop) use
:meth:`ModalityCache.read`, which reads just the rows of the frames asked for with plain file reads:
the array's shape and dtype are known from the record, and NumPy's ``.npy`` keeps the data at the
end of the file, so no header needs parsing and no memory map is set up per access.

A video record holds ``status`` (``ok`` or ``failed`` with ``error``), the picture types of its
frames as a string (``"IPPPPPPPPPPPIPP..."``; frame ``f`` is I-frame number ``types[:f+1].count("I")
- 1`` or P-frame number ``types[:f+1].count("P") - 1``), the storage and source sizes, the codec and
the source file's size and modification time (a changed file is cached again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from flatkd.errors import ConfigError, InputFileError, MissingPrerequisiteError
from flatkd.fileio import read_json
from flatkd.modalities import CHANNELS, Modality

#: Stored dtype of each modality.
DTYPES: dict[str, type[np.integer]] = {"iframe": np.uint8, "mv": np.int8, "residual": np.int8}
FORMAT_VERSION = 1
SETTINGS_FILE = "cache.json"
MANIFEST_FILE = "manifest.json"
META_FILE = "meta.json"
VIDEOS_DIR = "videos"
DEFAULT_CACHE_NAME = "cache"


@dataclass(frozen=True)
class CacheSettings:
    """How a cache is built.

    Attributes:
        size: shorter side of the stored frames in pixels (aspect kept); frames already that
            small or smaller are stored as they are. ``None`` keeps the source size.
        accumulate: motion vectors and residuals traced back to the GOP's I-frame (CoViAR's
            default) rather than to the previous frame.
    """

    size: int | None = 128
    accumulate: bool = True

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 16:
            raise ConfigError(
                f"cache size must be >= 16 pixels (or None for the source size), got {self.size}"
            )


def default_cache_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Where ``flatkd data cache DATA_DIR`` writes by default: ``DATA_DIR/cache``."""
    return Path(data_dir) / DEFAULT_CACHE_NAME


def video_dir(root: Path, key: str) -> Path:
    """The folder of video ``key`` in the cache at ``root``; refuses keys that would escape it."""
    parts = PurePosixPath(key).parts
    if not parts or PurePosixPath(key).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise InputFileError(f"video name {key!r} is not a relative path inside the dataset")
    return root.joinpath(VIDEOS_DIR, *parts)


@dataclass(frozen=True)
class VideoEntry:
    """One cached video: its key and record (see the module docstring)."""

    key: str
    record: dict[str, Any] = field(hash=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def error(self) -> str:
        return str(self.record.get("error", ""))

    @property
    def types(self) -> str:
        return str(self.record["types"])

    @property
    def size(self) -> tuple[int, int]:
        """Stored (height, width)."""
        return int(self.record["height"]), int(self.record["width"])

    @cached_property
    def p_frames(self) -> np.ndarray:
        """Frame indices of the P-frames, in order (row ``i`` of ``mv.npy`` is frame ``p_frames[i]``)."""
        return np.flatnonzero(np.frombuffer(self.types.encode("ascii"), dtype=np.uint8) == ord("P"))

    @cached_property
    def gop_of_p(self) -> np.ndarray:
        """For each P-frame, the row of its GOP's I-frame in ``iframe.npy``."""
        is_i = np.frombuffer(self.types.encode("ascii"), dtype=np.uint8) == ord("I")
        return (np.cumsum(is_i) - 1)[self.p_frames]


class ModalityCache:
    """Read access to a finished cache: settings, per-video records and memory-mapped arrays."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not (self.root / SETTINGS_FILE).is_file():
            raise MissingPrerequisiteError(
                f"{self.root} is not a flatkd cache: build it with "
                f"`flatkd data cache DATASET_DIR --out {self.root}`"
            )
        info = read_json(self.root / SETTINGS_FILE)
        if info.get("format") != FORMAT_VERSION:
            raise InputFileError(
                f"{self.root}: cache format {info.get('format')} is not {FORMAT_VERSION}: build it again"
            )
        self.settings = CacheSettings(size=info["size"], accumulate=info["accumulate"])
        if not (self.root / MANIFEST_FILE).is_file():
            raise MissingPrerequisiteError(
                f"cache {self.root} is incomplete (its build was interrupted): run `flatkd data cache` "
                f"again with --out {self.root}"
            )
        manifest = read_json(self.root / MANIFEST_FILE)
        self._entries = {key: VideoEntry(key, record) for key, record in manifest["videos"].items()}
        self._folders = {key: str(video_dir(self.root, key)) for key in self._entries}

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def entry(self, key: str) -> VideoEntry:
        """The record of video ``key``; ``KeyError`` if the cache never saw it."""
        return self._entries[key]

    @property
    def entries(self) -> dict[str, VideoEntry]:
        return dict(self._entries)

    def _path(self, key: str, modality: Modality) -> str:
        return os.path.join(self._folders[key], f"{modality}.npy")

    def load(self, key: str, modality: Modality) -> np.ndarray:
        """The memory-mapped array of ``modality`` for video ``key`` (shapes in the module docstring)."""
        path = self._path(key, modality)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise self._missing(path) from None
        except ValueError as exc:
            raise self._corrupt(path, str(exc)) from None

    def read(self, key: str, modality: Modality, frames: np.ndarray, top: int, height: int) -> np.ndarray:
        """Rows ``top .. top + height - 1`` of the stored frames ``frames`` (indices into the
        modality's array: GOPs for ``iframe``, P-frames otherwise) as ``[len(frames), height, W, C]``."""
        entry = self._entries[key]
        count = len(entry.p_frames) if modality != "iframe" else len(entry.types) - len(entry.p_frames)
        stored_height, width = entry.size
        row_bytes = width * CHANNELS[modality] * np.dtype(DTYPES[modality]).itemsize
        frame_bytes = stored_height * row_bytes
        out = np.empty((len(frames), height, width, CHANNELS[modality]), dtype=DTYPES[modality])
        path = self._path(key, modality)
        try:
            with open(path, "rb", buffering=0) as handle:
                data_start = os.fstat(handle.fileno()).st_size - count * frame_bytes
                if data_start < 0:
                    raise self._corrupt(path, "shorter than its record says")
                for i, frame in enumerate(frames):
                    handle.seek(data_start + int(frame) * frame_bytes + top * row_bytes)
                    if handle.readinto(memoryview(out[i]).cast("B")) != height * row_bytes:
                        raise self._corrupt(path, "ends early")
        except FileNotFoundError:
            raise self._missing(path) from None
        return out

    def _missing(self, path: str) -> MissingPrerequisiteError:
        return MissingPrerequisiteError(
            f"{path} is missing: run `flatkd data cache` again with --out {self.root}"
        )

    def _corrupt(self, path: str, why: str) -> InputFileError:
        return InputFileError(
            f"{path}: corrupt cache file ({why}): delete it and run `flatkd data cache` again"
        )
