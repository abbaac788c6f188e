"""Reading I-frames, motion vectors and residuals from MPEG-4 Part 2 and H.264 files.

:class:`CompressedVideo` opens a file once to index it (:func:`flatkd.codec.probe.scan`) and
refuses what it cannot read exactly (B-frames, several H.264 reference frames, codecs without
motion vectors). Then

* :meth:`CompressedVideo.iter_gops` decodes the whole video once and yields each GOP's I-frame and
  every frame's motion vectors and residuals (the fast path for building a cache);
* :meth:`CompressedVideo.read` returns the representations of chosen frames: it seeks to each
  needed GOP's I-frame (by timestamp, or by byte offset in raw streams) and decodes no further than
  the last frame asked for in that GOP.

Conventions, shared by every array this module returns (CoViAR's, see
:mod:`flatkd.codec.compensation`): frames are indexed in decoding order (= display order, as there
are no B-frames); images are RGB ``uint8 [H, W, 3]``; motion ``int16 [H, W, 2]`` holds ``(x, y)`` in
whole pixels, destination minus source; residuals are ``int16 [H, W, 3]`` RGB, decoded frame minus
motion-compensated reference. An I-frame has zero motion and zero residual. With ``accumulate``
(the default, as in CoViAR) motion and residual trace back to the GOP's I-frame; without, to the
previous frame.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from flatkd.codec.compensation import GopCompensator, PFrame
from flatkd.codec.probe import open_input, scan
from flatkd.errors import InputFileError

logger = logging.getLogger(__name__)

_I_FRAME = 1


@dataclass(frozen=True)
class Gop:
    """One group of pictures: its I-frame and the representations of all its frames.

    Attributes:
        start: index of the I-frame; frame ``start + k`` has ``mv[k]`` and ``residual[k]``.
        picture_types: one letter per frame (``I`` then ``P``...).
        iframe: ``uint8 [H, W, 3]`` RGB of the I-frame.
        mv: ``int16 [n, H, W, 2]``; ``mv[0] == 0``.
        residual: ``int16 [n, H, W, 3]``; ``residual[0] == 0``.
        accumulated: whether ``mv``/``residual`` trace back to the I-frame (else to the previous
            frame).
    """

    start: int
    picture_types: str
    iframe: np.ndarray
    mv: np.ndarray
    residual: np.ndarray
    accumulated: bool

    def __len__(self) -> int:
        return len(self.picture_types)


@dataclass(frozen=True)
class Frames:
    """Representations of requested frames, in the order (and with the repeats) requested.

    Attributes:
        indices: ``int64 [N]`` frame indices.
        gop_starts: ``int64 [N]`` index of each frame's I-frame.
        picture_types: one letter per frame.
        iframes: ``uint8 [N, H, W, 3]`` the I-frame of each frame's GOP (CoViAR's I-frame input).
        rgb: ``uint8 [N, H, W, 3]`` decoded frames.
        mv: ``int16 [N, H, W, 2]`` motion vectors.
        residual: ``int16 [N, H, W, 3]`` residuals.
        accumulated: see :class:`Gop`.
    """

    indices: np.ndarray
    gop_starts: np.ndarray
    picture_types: str
    iframes: np.ndarray
    rgb: np.ndarray
    mv: np.ndarray
    residual: np.ndarray
    accumulated: bool


#: Output slots for one frame: (rgb, mv, residual), each ``None`` when not wanted.
_Slots = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


class CompressedVideo:
    """A video whose I-frames, motion vectors and residuals can be read.

    Raises :class:`~flatkd.errors.InputFileError` for a file that is missing, not a video, or not
    readable exactly (the message says why and names ``flatkd data transcode`` where it helps).

    One object decodes one thing at a time (it reuses its buffers): finish or close an
    :meth:`iter_gops` iteration before calling :meth:`read` or iterating again.

    Attributes:
        info: the stream's structure (:class:`~flatkd.codec.probe.VideoInfo`).
        frames_decoded: pictures decoded so far by this object (for tests and benchmarks).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.info, self._index = scan(self.path)
        problem = self.info.problem()
        if problem:
            raise InputFileError(f"{self.path}: {problem}")
        self._compensator = GopCompensator(self.info.height, self.info.width)
        self._reformatter = VideoReformatter()
        self._walking = False
        self.frames_decoded = 0

    def __len__(self) -> int:
        return self.info.frame_count

    # ------------------------------------------------------------------------------------------
    # public reading API

    def iter_gops(self, accumulate: bool = True) -> Iterator[Gop]:
        """Decode the whole video once, yielding one :class:`Gop` after another (new arrays each)."""
        info = self.info
        owner = np.repeat(info.gop_starts, info.gop_lengths).tolist()
        length_of = dict(zip(info.gop_starts, info.gop_lengths, strict=True))
        pending: dict[int, Gop] = {}

        def gop_of(k: int) -> Gop:
            start = owner[k]
            if start not in pending:
                pending[start] = self._new_gop(start, length_of[start], accumulate)
            return pending[start]

        def slots(k: int) -> _Slots:
            gop = gop_of(k)
            if k == gop.start:
                return gop.iframe, None, None
            return None, gop.mv[k - gop.start], gop.residual[k - gop.start]

        for k in self._walk(0, info.frame_count, accumulate, slots):
            start = owner[k]
            if k == start + length_of[start] - 1:
                yield pending.pop(start)

    def _new_gop(self, start: int, length: int, accumulate: bool) -> Gop:
        shape = (self.info.height, self.info.width)
        gop = Gop(
            start=start,
            picture_types=self.info.picture_types[start : start + length],
            iframe=np.empty((*shape, 3), dtype=np.uint8),
            mv=np.empty((length, *shape, 2), dtype=np.int16),
            residual=np.empty((length, *shape, 3), dtype=np.int16),
            accumulated=accumulate,
        )
        gop.mv[0] = 0
        gop.residual[0] = 0
        return gop

    def read(self, indices: Sequence[int] | np.ndarray, accumulate: bool = True) -> Frames:
        """The representations of the frames ``indices`` (any order, repeats allowed).

        Decodes only the GOPs holding them, each from its I-frame up to its last frame asked for.
        """
        info = self.info
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            raise ValueError("no frame indices given")
        bad = wanted[(wanted < 0) | (wanted >= info.frame_count)]
        if bad.size:
            raise InputFileError(
                f"{self.path}: frame {bad[0]} does not exist (the video has {info.frame_count} frames)"
            )
        unique, inverse = np.unique(wanted, return_inverse=True)
        gop_starts = np.asarray(info.gop_starts, dtype=np.int64)
        owner = gop_starts[np.searchsorted(gop_starts, unique, side="right") - 1]
        gops, gop_of = np.unique(owner, return_inverse=True)
        shape = (info.height, info.width)
        iframes = np.empty((len(gops), *shape, 3), dtype=np.uint8)
        rgb = np.empty((len(unique), *shape, 3), dtype=np.uint8)
        mv = np.zeros((len(unique), *shape, 2), dtype=np.int16)
        residual = np.zeros((len(unique), *shape, 3), dtype=np.int16)
        slot_of = {int(k): i for i, k in enumerate(unique)}
        iframe_of = {int(k): g for g, k in enumerate(gops)}

        def slots(k: int) -> _Slots:
            if k in iframe_of:
                return iframes[iframe_of[k]], None, None
            i = slot_of.get(k)
            return (None, None, None) if i is None else (rgb[i], mv[i], residual[i])

        for start, stop in self._runs(owner, unique):
            for _ in self._walk(start, stop, accumulate, slots):
                pass
        is_iframe = unique == owner
        rgb[is_iframe] = iframes[gop_of[is_iframe]]
        return Frames(
            indices=wanted,
            gop_starts=owner[inverse],
            picture_types="".join(info.picture_types[k] for k in wanted),
            iframes=iframes[gop_of[inverse]],
            rgb=rgb[inverse],
            mv=mv[inverse],
            residual=residual[inverse],
            accumulated=accumulate,
        )

    # ------------------------------------------------------------------------------------------
    # decoding

    @staticmethod
    def _runs(owner: np.ndarray, unique: np.ndarray) -> list[tuple[int, int]]:
        """Decode runs ``[start, stop)``: from each needed GOP's I-frame to its last needed frame,
        merged when one run ends where the next begins."""
        runs: list[tuple[int, int]] = []
        for start in np.unique(owner):
            stop = int(unique[owner == start].max()) + 1
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], stop)
            else:
                runs.append((int(start), stop))
        return runs

    def _walk(self, start: int, stop: int, accumulate: bool, slots: Callable[[int], _Slots]) -> Iterator[int]:
        """Decode frames ``[start, stop)`` (``start`` an I-frame), fill each frame's wanted slots,
        and yield the index of each frame done."""
        if self._walking:
            raise RuntimeError("a CompressedVideo reads one thing at a time: finish iter_gops() first")
        self._walking = True
        try:
            yield from self._walk_unguarded(start, stop, accumulate, slots)
        finally:
            self._walking = False

    def _walk_unguarded(
        self, start: int, stop: int, accumulate: bool, slots: Callable[[int], _Slots]
    ) -> Iterator[int]:
        types = self.info.picture_types
        compensator = self._compensator

        batch: list[PFrame] = []
        batch_frames: list[int] = []

        def flush() -> list[int]:
            compensator.steps(batch)
            done = list(batch_frames)
            batch.clear()
            batch_frames.clear()
            return done

        for k, frame in self._decode(start, stop):
            rgb_out, mv, residual = slots(k)
            is_iframe = types[k] == "I"
            # RGB for an output, or as the reference of a later residual: the I-frame when
            # accumulating, else the frame before a wanted residual
            wants_rgb = (
                rgb_out is not None
                or residual is not None
                or (is_iframe and accumulate)
                or (not accumulate and k + 1 < stop and slots(k + 1)[2] is not None)
            )
            rgb = (
                self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
                if wants_rgb
                else None
            )
            if rgb_out is not None:
                np.copyto(rgb_out, rgb)
            if is_iframe:
                yield from flush()
                compensator.start(rgb, accumulate)
                yield k
                continue
            side_data = frame.side_data.get("MOTION_VECTORS")
            batch.append(PFrame(None if side_data is None else side_data.to_ndarray(), rgb, mv, residual))
            batch_frames.append(k)
            if len(batch) == compensator.capacity:
                yield from flush()
        yield from flush()

    def _decode(self, start: int, stop: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames ``start .. stop - 1``, positioned at ``start``'s packet without decoding
        anything before it, and feeding no packet past ``stop - 1``'s."""
        types = self.info.picture_types
        decoder = self._decoder()
        container, packets = self._open_at(start)
        k = start
        try:
            for fed, packet in enumerate(packets, start=start):
                for frame in decoder.decode(packet):
                    yield self._checked(k, frame, types)
                    k += 1
                if fed + 1 == stop:
                    break
            for frame in decoder.decode(None):
                if k == stop:
                    break
                yield self._checked(k, frame, types)
                k += 1
        except av.error.FFmpegError as exc:
            raise InputFileError(
                f"{self.path}: corrupt stream near frame {k} ({exc.strerror or exc})"
            ) from None
        finally:
            container.close()
        if k < stop:
            raise InputFileError(
                f"{self.path}: decoding stopped at frame {k} of {stop}: corrupt or truncated"
            )

    def _open_at(self, start: int) -> tuple[av.container.InputContainer, Iterator[av.Packet]]:
        """A container and its packets from frame ``start`` on: seek by timestamp, or open raw
        streams at the packet's byte offset; demux (never decode) from the file start when that
        is not possible or misses."""
        index = self._index
        if start > 0 and index.positions_valid:
            if index.has_timestamps:
                container = open_input(self.path)
                with contextlib.suppress(av.error.FFmpegError):  # then the check below falls back
                    container.seek(int(index.timestamps[start]), stream=container.streams.video[0])
            else:
                container = open_input(self.path, skip_initial_bytes=str(int(index.positions[start])))
            packets = self._packets(container, start)
            first = next(packets, None)
            if first is not None and first.pos == index.positions[start]:
                return container, itertools.chain([first], packets)
            container.close()
            logger.debug("%s: seeking to frame %d missed; demuxing from the start", self.path, start)
        container = open_input(self.path)
        return container, self._packets(container, start)

    def _packets(self, container: av.container.InputContainer, start: int) -> Iterator[av.Packet]:
        """Non-empty packets from frame ``start``'s on; earlier ones are dropped undecoded."""
        index = self._index
        target = int(index.positions[start]) if index.positions_valid else None
        seen = 0
        for packet in container.demux(container.streams.video[0]):
            if packet.size == 0:
                continue
            if target is None:
                seen += 1
                if seen <= start:
                    continue
            elif packet.pos < target:
                continue
            yield packet

    def _checked(self, k: int, frame: av.VideoFrame, types: str) -> tuple[int, av.VideoFrame]:
        self.frames_decoded += 1
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise InputFileError(
                f"{self.path}: the frame size changes at frame {k}, from {self.info.width}x{self.info.height}"
                f" to {frame.width}x{frame.height} (flatkd reads one size per video); re-encode it with"
                " `flatkd data transcode`, which scales every frame to one size"
            )
        if frame.is_corrupt:
            raise InputFileError(f"{self.path}: frame {k} is corrupt (a damaged or truncated file)")
        if (int(frame.pict_type) == _I_FRAME) != (types[k] == "I"):
            raise InputFileError(
                f"{self.path}: frame {k} decodes as another picture type than its header says"
            )
        return k, frame

    def _decoder(self) -> av.CodecContext:
        decoder = av.CodecContext.create(self.info.codec, "r")
        decoder.extradata = self._index.extradata
        decoder.options = {"flags2": "+export_mvs"}
        decoder.thread_count = 1
        decoder.thread_type = "NONE"
        return decoder
