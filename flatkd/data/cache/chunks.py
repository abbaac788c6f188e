"""Chunk files (cache format 2): one zstd-compressed chunk per stored frame, with an offset index.

A chunk file holds the frames of one modality of one video::

    chunk 0 | chunk 1 | ... | chunk N-1 | offsets: uint64[N + 1] | count: uint64 | MAGIC (8 bytes)

Chunk ``i`` is the zstd frame (level :data:`LEVEL`) of stored frame ``i``'s bytes (C order,
``[H, W, C]`` of the modality's dtype) and lies at ``offsets[i] .. offsets[i + 1]``. The index sits
at the end, so the file is written in one pass: :class:`ChunkWriter` appends frames GOP by GOP
(memory stays at a GOP, whatever the video's length) into a temporary file and renames it into
place when it is complete. :func:`read_frames` reads the index and just the chunks of the frames
asked for; each thread of each process keeps the files it read last open, with their parsed
indexes, and one decompressor (a file replaced on disk since is opened again; a forked DataLoader
worker opens its own).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from types import TracebackType

import numpy as np
import zstandard

from flatkd.errors import InputFileError, OutputWriteError
from flatkd.fileio import atomic_path

MAGIC = b"FKDCHNK2"
#: zstd level: measured on real clips, 3 is within 3% of level 9's size at a third of its time
LEVEL = 3
_TAIL = struct.Struct("<Q8s")
#: chunk files each thread keeps open with their indexes (3 per video: the last ~20 videos)
OPEN_FILES = 64


def index_bytes(count: int) -> int:
    """Bytes a chunk file of ``count`` frames spends beyond its chunks (offsets, count, magic)."""
    return 8 * (count + 1) + _TAIL.size


def compressor() -> zstandard.ZstdCompressor:
    """The compressor chunk files are written with (also what estimates measure)."""
    return zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)


def write_failure(path: str | os.PathLike[str], exc: OSError) -> OutputWriteError:
    """``exc`` (raised writing ``path``) as a one-line error that names the path."""
    why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return OutputWriteError(f"{path}: {why}: free space (or choose another --out) and run the build again")


class ChunkWriter:
    """Write a chunk file frame by frame; ``path`` appears only when the writer closes cleanly.

    Use as a context manager; :meth:`append` adds frames, leaving the block writes the index and
    renames the file into place. An ``OSError`` (a full disk) becomes :class:`OutputWriteError`;
    on any error the temporary file is removed and ``path`` is untouched.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.bytes = 0
        self._offsets = [0]
        self._compressor = compressor()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ChunkWriter:
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._handle = self._stack.enter_context(open(tmp, "wb"))
        except OSError as exc:
            self._stack.close()
            raise write_failure(self.path, exc) from None
        return self

    def append(self, frames: np.ndarray) -> None:
        """Add ``frames`` (``[n, H, W, C]``), one chunk each."""
        try:
            for frame in frames:
                chunk = self._compressor.compress(np.ascontiguousarray(frame).data)
                self._handle.write(chunk)
                self._offsets.append(self._offsets[-1] + len(chunk))
        except OSError as exc:
            raise write_failure(self.path, exc) from None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:  # the temporary file goes, the error stays the caller's
            self._stack.__exit__(kind, exc, trace)
            return
        try:
            try:
                count = len(self._offsets) - 1
                self._handle.write(np.asarray(self._offsets, dtype="<u8").tobytes())
                self._handle.write(_TAIL.pack(count, MAGIC))
                self.bytes = self._offsets[-1] + index_bytes(count)
            except BaseException as error:
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
            self._stack.close()  # closes the file (a last flush can fail too), then renames it
        except OSError as error:
            raise write_failure(self.path, error) from None


def corrupt_file(path: str, why: str) -> InputFileError:
    """The one-line error for a damaged cache file."""
    return InputFileError(f"{path}: corrupt cache file ({why}): delete it and run `flatkd data cache` again")


def file_stamp(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one version of a file from another: device, inode, modification time, size."""
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size


class ChunkFile:
    """An open chunk file and its parsed offset index, read with ``os.pread`` (no shared file
    position, so one descriptor serves any number of reads).

    ``stamp`` identifies the file it opened (device, inode, modification time, size): a file
    replaced or rewritten since has another and must be opened again (:func:`open_chunk_file`).
    Raises ``FileNotFoundError`` for a missing file and :class:`InputFileError` for one without
    an index of ``count`` frames.
    """

    def __init__(self, path: str, count: int) -> None:
        self.count = count
        self.fd = os.open(path, os.O_RDONLY)
        self.close = weakref.finalize(self, os.close, self.fd)
        try:
            stat = os.fstat(self.fd)
            self.stamp = file_stamp(stat)
            start = stat.st_size - index_bytes(count)
            if start < 0:
                raise corrupt_file(path, "shorter than its index")
            tail = os.pread(self.fd, index_bytes(count), start)
            stored, magic = _TAIL.unpack_from(tail, len(tail) - _TAIL.size)
            if magic != MAGIC or stored != count:
                raise corrupt_file(path, "no chunk index, or not the frame count its record says")
            self.offsets: list[int] = np.frombuffer(tail, dtype="<u8", count=count + 1).tolist()
        except BaseException:
            self.close()
            raise

    def chunk(self, frame: int) -> bytes:
        """The compressed bytes of stored frame ``frame``."""
        low, high = self.offsets[frame], self.offsets[frame + 1]
        return os.pread(self.fd, high - low, low)


class _Reader(threading.local):
    """What reading keeps between calls, per thread of each process: one decompressor and the
    :data:`OPEN_FILES` chunk files read last (least recently used closed first)."""

    def __init__(self) -> None:
        self.decompressor = zstandard.ZstdDecompressor()
        self.files: OrderedDict[str, ChunkFile] = OrderedDict()


_reader = _Reader()


def _forget_inherited_files() -> None:
    """A forked child (a DataLoader worker) opens its own files: it drops the parent's state
    (closing only its own copies of the descriptors)."""
    global _reader
    _reader = _Reader()


os.register_at_fork(after_in_child=_forget_inherited_files)


def open_chunk_file(path: str, count: int) -> ChunkFile:
    """The chunk file ``path`` (of ``count`` frames), from this thread's open files while the file
    on disk is still the one opened (:attr:`ChunkFile.stamp`), else opened anew."""
    files = _reader.files
    handle = files.get(path)
    if handle is None or handle.count != count or handle.stamp != file_stamp(os.stat(path)):
        if handle is not None:
            del files[path]
            handle.close()
        handle = ChunkFile(path, count)
        files[path] = handle
        while len(files) > OPEN_FILES:
            files.popitem(last=False)[1].close()
    else:
        files.move_to_end(path)
    return handle


def read_frames(
    path: str, count: int, frames: np.ndarray, shape: tuple[int, int, int], dtype: np.dtype, top: int, height: int
) -> np.ndarray:
    """Rows ``top .. top + height - 1`` of frames ``frames`` of the chunk file ``path`` (which holds
    ``count`` frames of ``shape`` and ``dtype``) as ``[len(frames), height, W, C]``.

    Decompression dominates (a frame's whole chunk is decompressed for any rows of it); the file,
    its index and the decompressor are kept between calls (:func:`open_chunk_file`). Raises
    ``FileNotFoundError`` for a missing file and :class:`InputFileError` for a corrupt one.
    """
    out = np.empty((len(frames), height, *shape[1:]), dtype=dtype)
    row = shape[1] * shape[2]
    frame_bytes = shape[0] * row * dtype.itemsize
    handle = open_chunk_file(path, count)
    decompress = _reader.decompressor.decompress
    for i, frame in enumerate(frames):
        try:
            data = decompress(handle.chunk(frame))
        except zstandard.ZstdError as exc:
            raise corrupt_file(path, f"frame {frame}: {exc}") from None
        if len(data) != frame_bytes:
            raise corrupt_file(path, f"frame {frame} holds {len(data)} bytes, not {frame_bytes}")
        out[i] = np.frombuffer(data, dtype=dtype, count=height * row, offset=top * row * dtype.itemsize).reshape(
            out.shape[1:]
        )
    return out
