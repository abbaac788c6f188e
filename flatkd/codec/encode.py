"""Encoding frames into the streams flatkd reads: canonical MPEG-4 Part 2 or H.264.

The canonical format is the one CoViAR (Wu et al., "Compressed Video Action Recognition", CVPR
2018; github.com/chaoyuaw/pytorch-coviar, ``data/reencode.sh``) trained on: MPEG-4 Part 2, a GOP of
12 frames, P-frames only, 340x256. With FFmpeg's encoders that takes (DESIGN.md §3):

* ``mpeg4``: ``gop_size=12``, ``max_b_frames=0``, ``sc_threshold=1000000000`` (otherwise a scene cut
  inserts an extra I-frame) and a fixed quantiser ``qmin = qmax = q``;
* ``libx264``: ``keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1`` and a constant ``qp``. One
  reference frame matters: the exported motion vectors carry no reference index, so a block
  predicted from an older frame could not be compensated.

Frames get explicit pts ``0, 1, 2, ...`` in a ``1/fps`` time base and the encoder runs on one
thread, so the same frames give the same bytes. The file is written to a temporary sibling and
renamed over the target when complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from flatkd.errors import ConfigError
from flatkd.fileio import atomic_path

#: Container (FFmpeg muxer name) for each supported file suffix; raw streams carry one codec only.
CONTAINERS: dict[str, str] = {
    ".mp4": "mp4",
    ".avi": "avi",
    ".mkv": "matroska",
    ".m4v": "m4v",
    ".h264": "h264",
}
_RAW_CODEC = {".m4v": "mpeg4", ".h264": "h264"}

#: FFmpeg encoder and the default fixed quantiser per codec. MPEG-4 qscale 2 is near-lossless
#: (FFmpeg clamps CoViAR's ``-q:v 1`` to the encoder's default ``qmin`` of 2); x264 qp 23 is its
#: usual default quality.
_ENCODERS = {"mpeg4": "mpeg4", "h264": "libx264"}
_DEFAULT_QUANTISER = {"mpeg4": 2, "h264": 23}
_QUANTISER_RANGE = {"mpeg4": (1, 31), "h264": (0, 51)}


#: largest frame side the encoders take (MPEG-4 Part 2 codes sizes in 13 bits)
MAX_SIDE = 8190

#: the ways a frame of another aspect ratio can fill the output (:attr:`EncodeSettings.fit`)
FITS = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode a stream.

    Attributes:
        codec: ``"mpeg4"`` (MPEG-4 Part 2, canonical) or ``"h264"`` (libx264).
        width, height: frame size in pixels; even, because the stream is YUV 4:2:0.
        gop: distance between I-frames; every other frame is a P-frame (no B-frames).
        quantiser: fixed quantiser (MPEG-4 qscale 1-31, H.264 qp 0-51); ``None`` takes the codec's
            default (2 for MPEG-4, 23 for H.264).
        fps: frame rate written into the container.
        fit: how a source of another aspect ratio fills ``width x height`` (:func:`fit_frame`):
            ``crop`` (default) the largest centred window of the output's aspect ratio, ``pad``
            the whole frame centred on black, ``stretch`` the whole frame scaled to the size
            (CoViAR's ``reencode.sh``; distorts shapes).
    """

    codec: str = "mpeg4"
    width: int = 340
    height: int = 256
    gop: int = 12
    quantiser: int | None = field(default=None)
    fps: int = 30
    fit: str = "crop"

    def __post_init__(self) -> None:
        if self.codec not in _ENCODERS:
            raise ConfigError(f"codec {self.codec!r} is not supported: use 'mpeg4' or 'h264'")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 16 or value % 2 or value > MAX_SIDE:
                raise ConfigError(
                    f"{name} must be an even number of pixels from 16 to {MAX_SIDE}, got {value}"
                )
        if self.gop < 1:
            raise ConfigError(f"gop must be >= 1, got {self.gop}")
        if self.fit not in FITS:
            raise ConfigError(f"fit {self.fit!r} is not one of {', '.join(FITS)}")
        if self.fps < 1:
            raise ConfigError(f"fps must be >= 1, got {self.fps}")
        low, high = _QUANTISER_RANGE[self.codec]
        if self.quantiser is None:
            object.__setattr__(self, "quantiser", _DEFAULT_QUANTISER[self.codec])
        elif not low <= self.quantiser <= high:
            raise ConfigError(f"quantiser for {self.codec} must be in [{low}, {high}], got {self.quantiser}")


#: CoViAR's format: MPEG-4 Part 2, GOP 12, P-only, 340x256.
CANONICAL = EncodeSettings()


def container_for(path: str | os.PathLike[str], codec: str) -> str:
    """The FFmpeg muxer for ``path``'s suffix; raises :class:`ConfigError` for an unknown suffix
    or a raw-stream suffix that cannot hold ``codec`` (.m4v holds MPEG-4, .h264 holds H.264)."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        raise ConfigError(f"{path}: unknown output suffix, use one of {', '.join(CONTAINERS)}")
    raw_codec = _RAW_CODEC.get(suffix)
    if raw_codec is not None and raw_codec != codec:
        raise ConfigError(f"{path}: a {suffix} raw stream holds {raw_codec} only, not {codec}")
    return CONTAINERS[suffix]


def _stream_options(settings: EncodeSettings) -> dict[str, str]:
    q = str(settings.quantiser)
    if settings.codec == "mpeg4":
        return {"sc_threshold": "1000000000", "qmin": q, "qmax": q, "bf": "0", "g": str(settings.gop)}
    gop = settings.gop
    return {
        "qp": q,
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:ref=1:threads=1",
    }


def fit_frame(frame: av.VideoFrame, width: int, height: int, fit: str) -> av.VideoFrame:
    """``frame`` with the aspect ratio ``width : height`` (the encoder then scales it bicubically to
    that size): ``crop`` takes the largest centred window of that aspect ratio, ``pad`` scales the
    whole frame (bicubic) to fit inside ``width x height`` and centres it on black; ``stretch``, or
    a frame that has the aspect ratio already, is returned as it is. Pixel aspect ratios other
    than square are not considered (the stored pixel grid is what is fitted)."""
    if fit == "stretch" or frame.width * height == frame.height * width:
        return frame
    if fit == "crop":
        if frame.width * height > frame.height * width:  # wider than the output: cut the sides
            w, h = max(1, round(frame.height * width / height)), frame.height
        else:
            w, h = frame.width, max(1, round(frame.width * height / width))
        x, y = (frame.width - w) // 2, (frame.height - h) // 2
        pixels = frame.to_ndarray(format="rgb24")[y : y + h, x : x + w]
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
    scale = min(width / frame.width, height / frame.height)
    w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    inner = frame.reformat(width=w, height=h, format="rgb24", interpolation="BICUBIC", threads=1).to_ndarray()
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    canvas[y : y + h, x : x + w] = inner
    return av.VideoFrame.from_ndarray(canvas, format="rgb24")


def encode_video_frames(
    frames: Iterable[av.VideoFrame], path: str | os.PathLike[str], settings: EncodeSettings = CANONICAL
) -> int:
    """Encode PyAV frames (any size and pixel format; fitted to ``settings``' aspect ratio as
    ``settings.fit`` says, :func:`fit_frame`, and scaled bicubically to its size) to ``path``.

    Returns the number of frames written. The container follows the suffix (see
    :data:`CONTAINERS`). The output appears atomically: a failure leaves no file at ``path``.
    """
    container_format = container_for(path, settings.codec)
    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format) as container:
        stream = container.add_stream(
            _ENCODERS[settings.codec], rate=settings.fps, options=_stream_options(settings)
        )
        stream.width = settings.width
        stream.height = settings.height
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.thread_type = "NONE"
        stream.codec_context.gop_size = settings.gop
        stream.codec_context.max_b_frames = 0
        time_base = Fraction(1, settings.fps)
        stream.codec_context.time_base = time_base
        for frame in frames:
            out = fit_frame(frame, settings.width, settings.height, settings.fit).reformat(
                width=settings.width,
                height=settings.height,
                format="yuv420p",
                interpolation="BICUBIC",
                threads=1,
            )
            out.pts = count
            out.time_base = time_base
            out.pict_type = av.video.frame.PictureType.NONE
            container.mux(stream.encode(out))
            count += 1
        container.mux(stream.encode(None))
    return count


def encode_frames(
    frames: Iterable[np.ndarray], path: str | os.PathLike[str], settings: EncodeSettings = CANONICAL
) -> int:
    """Encode RGB frames, each ``(settings.height, settings.width, 3)`` uint8, to ``path``.

    Returns the number of frames written. Same frames and settings give the same bytes.
    """

    def to_av(rgb: np.ndarray) -> av.VideoFrame:
        if rgb.dtype != np.uint8 or rgb.shape != (settings.height, settings.width, 3):
            raise ValueError(
                f"frames must be uint8 ({settings.height}, {settings.width}, 3) RGB, "
                f"got {rgb.dtype} {rgb.shape}"
            )
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")

    return encode_video_frames((to_av(rgb) for rgb in frames), path, settings)
