"""The encoder everyone uses: canonical structure, byte-determinism, fixed quality, atomic output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.videos import moving_texture

from flatkd.codec.encode import CANONICAL, EncodeSettings, encode_frames
from flatkd.codec.probe import probe
from flatkd.errors import ConfigError


def yuv_round_trip(rgb: np.ndarray) -> np.ndarray:
    """What a lossless 4:2:0 codec would give back: RGB -> YUV 4:2:0 -> RGB."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", interpolation="BICUBIC"
    )
    return frame.to_ndarray(format="rgb24")


def _decoded(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return "".join("?IPB"[int(f.pict_type)] for f in frames), [f.to_ndarray(format="rgb24") for f in frames]


@pytest.mark.parametrize(
    ("codec", "suffix"),
    [("mpeg4", ".mp4"), ("mpeg4", ".avi"), ("mpeg4", ".m4v"), ("h264", ".mp4"), ("h264", ".h264")],
)
def test_canonical_structure_and_same_bytes_every_time(tmp_path: Path, codec: str, suffix: str) -> None:
    frames = moving_texture(26)
    settings = EncodeSettings(codec=codec, width=64, height=48)
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    assert encode_frames(frames, first, settings) == 26
    encode_frames(iter(frames), second, settings)
    assert first.read_bytes() == second.read_bytes()
    types, decoded = _decoded(first)
    assert types == ("I" + "P" * 11) * 2 + "IP"
    info = probe(first)
    assert (info.codec, info.width, info.height, info.frame_count) == (codec, 64, 48, 26)
    assert info.gop_starts == (0, 12, 24) and info.gop_layout == "12x2 2" and info.reference_frames == 1
    # the frames come back, close to what 4:2:0 colour conversion alone gives
    error = np.abs(np.stack(decoded).astype(int) - np.stack([yuv_round_trip(f) for f in frames])).mean()
    assert error < 5, error  # a wrong or shifted frame gives ~40


def test_quantiser_sets_the_quality(tmp_path: Path) -> None:
    frames = moving_texture(12)
    errors, sizes = [], []
    for q in (2, 31):
        path = tmp_path / f"q{q}.m4v"
        encode_frames(frames, path, EncodeSettings(width=64, height=48, quantiser=q))
        _, decoded = _decoded(path)
        errors.append(
            np.abs(np.stack(decoded).astype(int) - np.stack([yuv_round_trip(f) for f in frames])).mean()
        )
        sizes.append(path.stat().st_size)
    assert errors[0] < errors[1] and sizes[0] > 2 * sizes[1]


def test_canonical_settings() -> None:
    assert (CANONICAL.codec, CANONICAL.width, CANONICAL.height, CANONICAL.gop) == ("mpeg4", 340, 256, 12)
    assert EncodeSettings(width=64, height=48).quantiser == 2
    assert EncodeSettings(codec="h264").quantiser == 23


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 63}, "width must be an even"),
        ({"codec": "vp9"}, "codec 'vp9'"),
        ({"quantiser": 40}, r"quantiser for mpeg4 must be in \[1, 31\]"),
        ({"gop": 0}, "gop must be"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EncodeSettings(**kwargs)


def test_bad_output_names_and_frames(tmp_path: Path) -> None:
    frames = moving_texture(3)
    with pytest.raises(ConfigError, match="holds mpeg4 only"):
        encode_frames(frames, tmp_path / "x.m4v", EncodeSettings(codec="h264", width=64, height=48))
    with pytest.raises(ConfigError, match="unknown output suffix"):
        encode_frames(frames, tmp_path / "x.gif", EncodeSettings(width=64, height=48))
    with pytest.raises(ValueError, match=r"\(48, 64, 3\)"):
        encode_frames([frames[0][:40]], tmp_path / "x.mp4", EncodeSettings(width=64, height=48))


def test_a_failure_midway_leaves_no_file(tmp_path: Path) -> None:
    def frames() -> Iterator[np.ndarray]:
        yield from moving_texture(5)
        raise RuntimeError("camera unplugged")

    target = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError):
        encode_frames(frames(), target, EncodeSettings(width=64, height=48))
    assert list(tmp_path.iterdir()) == []
