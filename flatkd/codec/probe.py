"""What a video file holds, read from its container and packet headers without decoding pictures.

:func:`probe` demultiplexes every packet of the first video stream once and reads each packet's
picture type from its header (:mod:`flatkd.codec.bitstream`), which gives the frame count, the GOP
layout and whether there are B-frames. :func:`scan` also returns the byte position and timestamp of
every packet, which the reader uses to seek straight to a GOP.

Every problem a user can fix raises :class:`~flatkd.errors.InputFileError` with one line naming the
file; :meth:`VideoInfo.problem` says why a readable container still cannot be used for motion
vectors and residuals (and points to ``flatkd data transcode``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from flatkd.codec.bitstream import H264Headers, mpeg4_picture_type
from flatkd.errors import InputFileError

#: Codecs whose decoders export motion vectors that flatkd reads.
SUPPORTED_CODECS = ("mpeg4", "h264")
TRANSCODE_HINT = "convert it with `flatkd data transcode`"


@dataclass(frozen=True)
class VideoInfo:
    """The structure of a video's first video stream.

    Attributes:
        path: the file.
        container: FFmpeg's demuxer (``mp4``, ``avi``, ``m4v`` raw MPEG-4, ``h264`` raw H.264, ...).
        codec: FFmpeg's codec name (``mpeg4``, ``h264``, ``mjpeg``, ...).
        width, height: frame size in pixels.
        frame_count: number of coded pictures.
        picture_types: one letter per picture in decoding order: ``I``, ``P``, ``B``, ``S``
            (MPEG-4 sprite) or ``?`` (codec without such headers; key frames are still ``I``).
        reference_frames: H.264's ``max_num_ref_frames``; 1 for MPEG-4 Part 2; ``None`` otherwise.
        fps: nominal frame rate, ``None`` when the container does not say.
        size_change: where the frame size changes (e.g. two streams of different sizes
            concatenated), as found by :func:`find_size_change`; ``None`` when unchecked or constant.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    frame_count: int
    picture_types: str
    reference_frames: int | None
    fps: float | None
    size_change: str | None = None

    @property
    def gop_starts(self) -> tuple[int, ...]:
        """Frame index of every I-frame."""
        return tuple(i for i, letter in enumerate(self.picture_types) if letter == "I")

    @property
    def gop_lengths(self) -> tuple[int, ...]:
        """Number of frames in each GOP (from one I-frame to the next)."""
        bounds = [*self.gop_starts, self.frame_count]
        return tuple(b - a for a, b in itertools.pairwise(bounds))

    @property
    def has_b_frames(self) -> bool:
        return "B" in self.picture_types

    @property
    def gop_layout(self) -> str:
        """GOP lengths run-length encoded, e.g. ``12x20 5`` (twenty GOPs of 12, then one of 5)."""
        runs: list[list[int]] = []
        for length in self.gop_lengths:
            if runs and runs[-1][0] == length:
                runs[-1][1] += 1
            else:
                runs.append([length, 1])
        return " ".join(f"{length}x{count}" if count > 1 else str(length) for length, count in runs)

    def problem(self) -> str | None:
        """Why flatkd cannot read motion vectors and residuals from this video (``None``: it can)."""
        if self.size_change:
            return f"{self.size_change} (flatkd reads one size per video); {TRANSCODE_HINT}"
        if self.codec not in SUPPORTED_CODECS:
            return f"codec {self.codec} carries no motion vectors flatkd can read; {TRANSCODE_HINT}"
        if self.has_b_frames:
            return f"has B-frames (two references, reordered), which flatkd does not read; {TRANSCODE_HINT}"
        if "S" in self.picture_types:
            return f"uses MPEG-4 global motion compensation (S-VOPs); {TRANSCODE_HINT}"
        if "?" in self.picture_types:
            frame = self.picture_types.index("?")
            return f"packet {frame} holds no picture flatkd recognises; {TRANSCODE_HINT}"
        if not self.picture_types.startswith("I"):
            return f"does not start with an I-frame; {TRANSCODE_HINT}"
        if self.reference_frames is not None and self.reference_frames > 1:
            return (
                f"H.264 with up to {self.reference_frames} reference frames, but exported motion "
                f"vectors do not say which one a block uses; {TRANSCODE_HINT}"
            )
        return None


@dataclass(frozen=True)
class PacketIndex:
    """Where each picture's packet lies, in decoding order, and the stream's codec extradata.

    ``timestamps`` are ``-1`` where the container has none (raw streams); ``positions`` (bytes from
    the file start) identify packets after a seek, and are usable when ``positions_valid``.
    """

    positions: np.ndarray
    timestamps: np.ndarray
    extradata: bytes | None

    @property
    def has_timestamps(self) -> bool:
        return bool(np.all(self.timestamps >= 0))

    @property
    def positions_valid(self) -> bool:
        return bool(self.positions.min() >= 0 and np.all(np.diff(self.positions) > 0))


def _reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def open_input(path: str | os.PathLike[str], **options: str) -> av.container.InputContainer:
    """Open ``path`` with PyAV; a missing, empty or unreadable file raises :class:`InputFileError`."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a video file")
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file")
    try:
        container = av.open(str(path), options=options or None)
    except av.error.FFmpegError as exc:
        raise InputFileError(f"{path}: not a video FFmpeg can read, or truncated ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputFileError(f"{path}: has no video stream")
    return container


def _container_name(format_name: str) -> str:
    names = format_name.split(",")
    return "mp4" if "mp4" in names else names[0]


def _header_reader(
    codec: str, extradata: bytes | None
) -> tuple[Callable[[memoryview], str], H264Headers | None]:
    if codec == "mpeg4":
        return mpeg4_picture_type, None
    if codec == "h264":
        headers = H264Headers(extradata)
        return headers.picture_type, headers
    return (lambda _packet: "?"), None


def scan(path: str | os.PathLike[str]) -> tuple[VideoInfo, PacketIndex]:
    """Demultiplex every packet of the first video stream (no decoding) and read its header."""
    path = Path(path)
    with open_input(path) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        picture_type, h264 = _header_reader(codec, stream.codec_context.extradata)
        letters, positions, timestamps = [], [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                letter = picture_type(memoryview(packet))
                letters.append("I" if letter == "?" and packet.is_keyframe else letter)
                positions.append(-1 if packet.pos is None else packet.pos)
                timestamps.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise InputFileError(
                f"{path}: corrupt or truncated after {len(letters)} frames ({_reason(exc)})"
            ) from None
        if not letters:
            raise InputFileError(f"{path}: the video stream holds no frames")
        rate = stream.guessed_rate or stream.average_rate  # raw streams: the rate in their headers
        info = VideoInfo(
            path=path,
            container=_container_name(container.format.name),
            codec=codec,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frame_count=len(letters),
            picture_types="".join(letters),
            reference_frames=h264.max_ref_frames if h264 else (1 if codec == "mpeg4" else None),
            fps=float(rate) if rate else None,
        )
        index = PacketIndex(
            positions=np.asarray(positions, dtype=np.int64),
            timestamps=np.asarray([-1 if t is None else t for t in timestamps], dtype=np.int64),
            extradata=stream.codec_context.extradata,
        )
    return info, index


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """The structure of ``path``'s first video stream (see :class:`VideoInfo`)."""
    return scan(path)[0]


def find_size_change(info: VideoInfo) -> str | None:
    """Decode the I-frames of ``info``'s video (nothing else) and say where the frame size first
    differs from the container's (``None``: it never does, or the check could not decode).

    The headers :func:`scan` reads give one size per stream; a file that is two streams of
    different sizes concatenated shows its second size only in the decoded pictures."""
    try:
        with open_input(info.path) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            starts = info.gop_starts
            for ordinal, frame in enumerate(container.decode(stream)):
                if (frame.width, frame.height) != (info.width, info.height):
                    where = starts[ordinal] if ordinal < len(starts) else "?"
                    return (
                        f"the frame size changes from {info.width}x{info.height} to"
                        f" {frame.width}x{frame.height} at frame {where}"
                    )
    except (av.error.FFmpegError, InputFileError):
        return None
    return None
