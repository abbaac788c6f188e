"""The modality cache on disk, and reading it.

A cache holds, for every video, exactly what TSN training on compressed video reads (CoViAR,
Wu et al. CVPR 2018, ``dataset.py``): each segment picks one P-frame and the I-frame of its GOP. So
the cache keeps the I-frame of every GOP and the motion vectors and residual of every P-frame (the
RGB of P-frames, never used, is not stored), resized to a storage size chosen at build time, of the
modalities chosen at build time (all three by default). Format 2::

    CACHE/cache.json                      format and settings: {"format", "size", "accumulate",
                                          "modalities", "residual_step"}
    CACHE/manifest.json                   per-video records (written when a build finishes)
    CACHE/videos/<key>/iframe.zst         uint8 [G, H, W, 3]  RGB of the G I-frames
    CACHE/videos/<key>/mv.zst             int8  [P, H, W, 2]  (dx, dy) = dst - src, storage pixels
    CACHE/videos/<key>/residual.zst       int8  [P, H, W, 3]  RGB residual
    CACHE/videos/<key>/meta.json          the video's record; written last, it marks the video done

``<key>`` is the sample's list entry without suffix (``Class/v_Class_g08_c01``). Each ``.zst`` file
is a chunk file (:mod:`flatkd.data.cache.chunks`): one zstd chunk per frame and an offset index,
so a sample decompresses only the frames it uses. Motion vectors are scaled with the image and
clipped to int8, residuals clipped to int8: CoViAR's normalisation clips motion at +-20 pixels and
residuals at [-128, 127] anyway (DESIGN.md §3), so nothing the networks see is lost. With
``residual_step`` > 1 (lossy, off by default) residuals are rounded to multiples of the step
(:func:`flatkd.data.cache.storage.store_residual`).

Format 1 (flatkd before format 2) stored the same arrays uncompressed as ``<modality>.npy``, 3-13x
larger; such caches are still read (never written or extended: a build into one is refused with
the command that makes a format-2 copy).

Readers that want a few frames of many videos (the training loop) use :meth:`ModalityCache.read`,
which reads just the frames asked for (format 2: their chunks; format 1: their rows, by plain file
reads at offsets known from the record, since NumPy's ``.npy`` keeps the data at the file's end).

A video record holds ``status`` (``ok`` or ``failed`` with ``error``), the picture types of its
frames as a string (``"IPPPPPPPPPPPIPP..."``; frame ``f`` is I-frame number ``types[:f+1].count("I")
- 1`` or P-frame number ``types[:f+1].count("P") - 1``), the storage and source sizes, the codec,
the bytes of its files per modality and the source file's size and modification time (a changed
file is cached again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from flatkd.data.cache.chunks import corrupt_file, read_frames
from flatkd.errors import ConfigError, InputFileError, MissingPrerequisiteError
from flatkd.fileio import read_json
from flatkd.modalities import CHANNELS, MODALITIES, Modality

#: Stored dtype of each modality.
DTYPES: dict[str, type[np.integer]] = {"iframe": np.uint8, "mv": np.int8, "residual": np.int8}
FORMAT_VERSION = 2
#: the format that stored plain ``.npy`` arrays; read, never written
NPY_FORMAT = 1
#: file suffix of a modality's frames in each format
SUFFIXES = {NPY_FORMAT: ".npy", FORMAT_VERSION: ".zst"}
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
        modalities: the modalities stored (a run that trains on I-frames and motion needs no
            residuals), in canonical order.
        residual_step: residuals rounded to multiples of this (lossy when > 1: the error is at
            most ``residual_step // 2`` per value; smaller files).
    """

    size: int | None = 128
    accumulate: bool = True
    modalities: tuple[Modality, ...] = MODALITIES
    residual_step: int = 1

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 16:
            raise ConfigError(
                f"cache size must be >= 16 pixels (or None for the source size), got {self.size}"
            )
        unknown = sorted(set(self.modalities) - set(MODALITIES))
        if unknown or not self.modalities:
            raise ConfigError(f"cache modalities must be some of {', '.join(MODALITIES)}, got {list(self.modalities)}")
        object.__setattr__(self, "modalities", tuple(m for m in MODALITIES if m in self.modalities))
        if not 1 <= self.residual_step <= 64:
            raise ConfigError(f"residual step must be 1 (lossless) to 64, got {self.residual_step}")

    def record(self) -> dict[str, Any]:
        """The settings as ``cache.json`` holds them (JSON types, with the format)."""
        return {
            "format": FORMAT_VERSION,
            "size": self.size,
            "accumulate": self.accumulate,
            "modalities": list(self.modalities),
            "residual_step": self.residual_step,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CacheSettings:
        """The settings of a ``cache.json`` of either format (format 1 stored all modalities,
        losslessly)."""
        return cls(
            size=record["size"],
            accumulate=record["accumulate"],
            modalities=tuple(record.get("modalities", MODALITIES)),
            residual_step=record.get("residual_step", 1),
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

    def count(self, modality: Modality) -> int:
        """Frames stored of ``modality``: the GOPs for ``iframe``, the P-frames otherwise."""
        return len(self.p_frames) if modality != "iframe" else len(self.types) - len(self.p_frames)

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
    """Read access to a finished cache (format 2, or format 1 read-only): settings, per-video
    records, frames."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not (self.root / SETTINGS_FILE).is_file():
            raise MissingPrerequisiteError(
                f"{self.root} is not a flatkd cache: build it with "
                f"`flatkd data cache DATASET_DIR --out {self.root}`"
            )
        info = read_json(self.root / SETTINGS_FILE)
        self.format = info.get("format")
        if self.format not in SUFFIXES:
            raise InputFileError(
                f"{self.root}: cache format {self.format} is not one this flatkd reads "
                f"({', '.join(map(str, SUFFIXES))}): build it again"
            )
        self.settings = CacheSettings.from_record(info)
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

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities this cache stores."""
        return self.settings.modalities

    def _path(self, key: str, modality: Modality) -> str:
        if modality not in self.settings.modalities:
            raise MissingPrerequisiteError(
                f"cache {self.root} stores {', '.join(self.settings.modalities)}, not {modality}: "
                f"build one with --modalities {modality} (or all) into another --out"
            )
        return os.path.join(self._folders[key], f"{modality}{SUFFIXES[self.format]}")

    def load(self, key: str, modality: Modality) -> np.ndarray:
        """The whole array of ``modality`` for video ``key`` (shapes in the module docstring;
        memory-mapped in format 1)."""
        if self.format == FORMAT_VERSION:
            frames = np.arange(self._entries[key].count(modality))
            return self.read(key, modality, frames, 0, self._entries[key].size[0])
        path = self._path(key, modality)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise self._missing(path) from None
        except ValueError as exc:
            raise corrupt_file(path, str(exc)) from None

    def read(self, key: str, modality: Modality, frames: np.ndarray, top: int, height: int) -> np.ndarray:
        """Rows ``top .. top + height - 1`` of the stored frames ``frames`` (indices into the
        modality's array: GOPs for ``iframe``, P-frames otherwise) as ``[len(frames), height, W, C]``."""
        entry = self._entries[key]
        path = self._path(key, modality)
        shape = (*entry.size, CHANNELS[modality])
        dtype = np.dtype(DTYPES[modality])
        try:
            if self.format == FORMAT_VERSION:
                return read_frames(path, entry.count(modality), frames, shape, dtype, top, height)
            return self._read_npy(path, entry.count(modality), frames, shape, dtype, top, height)
        except FileNotFoundError:
            raise self._missing(path) from None

    def _read_npy(
        self, path: str, count: int, frames: np.ndarray, shape: tuple[int, int, int], dtype: np.dtype,
        top: int, height: int,
    ) -> np.ndarray:
        """:meth:`read` of a format-1 ``.npy`` file."""
        row_bytes = shape[1] * shape[2] * dtype.itemsize
        frame_bytes = shape[0] * row_bytes
        out = np.empty((len(frames), height, *shape[1:]), dtype=dtype)
        with open(path, "rb", buffering=0) as handle:
            data_start = os.fstat(handle.fileno()).st_size - count * frame_bytes
            if data_start < 0:
                raise corrupt_file(path, "shorter than its record says")
            for i, frame in enumerate(frames):
                handle.seek(data_start + int(frame) * frame_bytes + top * row_bytes)
                if handle.readinto(memoryview(out[i]).cast("B")) != height * row_bytes:
                    raise corrupt_file(path, "ends early")
        return out

    def _missing(self, path: str) -> MissingPrerequisiteError:
        return MissingPrerequisiteError(
            f"{path} is missing: run `flatkd data cache` again with --out {self.root}"
        )
