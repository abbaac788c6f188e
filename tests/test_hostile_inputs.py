"""Hostile and careless inputs (issue 17): every error a user can fix ends in one line and exit
status 2, "finished but some inputs failed" is exit status 3, one bad video fails alone, worker
pools end with their parent, transcode skips only what it made from the same source and settings.

Each case is tiny (videos of 24 frames at 64x64 or smaller). :data:`HOSTILE_CASES` counts the
cases the tests of this issue try (here and in the other test files that name issue 17).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.videos import moving_texture

from flatkd.codec.encode import EncodeSettings, encode_frames
from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.dataset_splits import list_videos
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.errors import InputFileError

SMALL = SynthSettings(classes=4, clips_per_class=6, clips_per_group=2, frames=26, width=64, height=48, seed=5)


def _size_changing_video(folder: Path, name: str = "ab.m4v") -> Path:
    """Two raw MPEG-4 streams of different frame sizes, concatenated (``cat a.m4v b.m4v``)."""
    first, second = folder / "part64.m4v", folder / "part32.m4v"
    encode_frames(moving_texture(24, 64, 64), first, EncodeSettings(width=64, height=64))
    encode_frames(moving_texture(24, 32, 32, seed=1), second, EncodeSettings(width=32, height=32))
    out = folder / name
    out.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return out


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-synth")
    generate_synthetic(root, SMALL, jobs=1)
    return root


# ---- item 2: a video whose frame size changes ------------------------------------------------


def test_a_size_changing_video_fails_alone_in_the_cache_with_its_reason(small_set: Path, tmp_path: Path) -> None:
    samples = list_videos(small_set)
    victim = samples[5]
    bad = _size_changing_video(tmp_path)
    data = tmp_path / "data"
    import shutil

    shutil.copytree(small_set, data, ignore=shutil.ignore_patterns("cache"))
    target = data / victim.path.relative_to(small_set)
    target.write_bytes(bad.read_bytes())
    result = run_flatkd("data", "cache", str(data), "--jobs", "1", "--size", "32")
    assert result.exit_code == 3, result.output  # finished, some inputs failed
    assert "Traceback" not in result.output
    assert f"{len(samples) - 1} videos cached, 0 already cached, 1 failed" in result.stdout
    entry = ModalityCache(data / "cache").entries[victim.video]
    assert not entry.ok and "frame size changes at frame 24" in entry.error and str(target) in entry.error
    again = run_flatkd("data", "cache", str(data), "--jobs", "1", "--size", "32")
    assert again.exit_code == 3 and f"0 videos cached, {len(samples) - 1} already cached, 1 failed" in again.stdout


def test_a_size_changing_video_is_one_line_in_extract_and_unreadable_in_inspect(tmp_path: Path) -> None:
    bad = _size_changing_video(tmp_path)
    with pytest.raises(InputFileError, match="frame size changes at frame 24, from 64x64 to 32x32"):
        for _ in CompressedVideo(bad).iter_gops():
            pass
    with pytest.raises(InputFileError, match="frame size changes"):
        CompressedVideo(bad).read([30])
    extract = run_flatkd("data", "extract", str(bad), "--out", str(tmp_path / "x.npz"), "--frames", "30")
    assert_one_line_error(extract, "ab.m4v", "frame size changes", "flatkd data transcode")
    inspect = run_flatkd("data", "inspect", str(bad))
    assert inspect.exit_code == 0
    row = next(line for line in inspect.stdout.splitlines() if line.startswith(str(bad)))
    assert row.split()[-1] == "no"
    assert "the frame size changes from 64x64 to 32x32 at frame 24" in inspect.stdout
    transcode = run_flatkd("data", "transcode", str(bad), "--out", str(tmp_path / "t"), "--size", "32x32")
    assert transcode.exit_code == 0, transcode.output
    assert CompressedVideo(tmp_path / "t" / "ab.mp4").info.frame_count == 48


# ---- item 1: one error boundary ---------------------------------------------------------------


@pytest.mark.parametrize(
    "out, fragments",
    [
        ("{file}/sub", ("Not a directory", "ENOTDIR", "choose another path")),
        ("/proc/flatkd-out", ("/proc/flatkd-out", "check the path")),
    ],
    ids=["out-under-a-file", "out-in-proc"],
)
def test_os_errors_are_one_line_naming_the_path(tmp_path: Path, out: str, fragments: tuple[str, ...]) -> None:
    source = tmp_path / "clip.m4v"
    encode_frames(moving_texture(6, 32, 32), source, EncodeSettings(width=32, height=32))
    out = out.format(file=source)
    result = run_flatkd("data", "transcode", str(source), "--out", out, "--size", "32x32")
    assert_one_line_error(result, *fragments)


def test_os_errors_of_every_kind_get_a_path_and_advice() -> None:
    import errno

    from flatkd.cli.common import describe_os_error

    cases = {
        errno.ENOSPC: "disk is full",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only",
        errno.ENOTDIR: "not a folder",
        errno.EDQUOT: "quota",
    }
    for code, advice in cases.items():
        line = describe_os_error(OSError(code, os.strerror(code), "/runs/r1/metrics.csv"))
        assert line.startswith("/runs/r1/metrics.csv: ") and advice in line and "\n" not in line
    nameless = describe_os_error(OSError(errno.ENOSPC, "No space left on device"), ["train", "--run", "runs/r1"])
    assert "runs/r1" in nameless and "disk is full" in nameless


def test_a_disk_full_error_inside_a_command_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import errno

    transcode_module = sys.modules["flatkd.codec.transcode"]

    source = tmp_path / "clip.m4v"
    encode_frames(moving_texture(6, 32, 32), source, EncodeSettings(width=32, height=32))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transcode_module, "write_json", full)
    result = run_flatkd("data", "transcode", str(source), "--out", str(tmp_path / "o"), "-j", "1")
    assert_one_line_error(result, "No space left on device", "disk is full", str(tmp_path / "o"))


def test_an_ffmpeg_error_reaching_the_cli_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import av.error

    transcode_module = sys.modules["flatkd.codec.transcode"]

    def broken(*args: object, **kwargs: object) -> None:
        raise av.error.ArgumentError(22, "Invalid argument", "frame.mp4")

    monkeypatch.setattr(transcode_module, "transcode_all", broken)
    import flatkd.cli.data_transcode as cli_module

    monkeypatch.setattr(cli_module, "transcode_all", broken)
    result = run_flatkd("data", "transcode", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "FFmpeg", "Invalid argument", "flatkd data inspect")


def test_a_huge_transcode_size_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_flatkd("data", "transcode", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "o"), "--size", "100000x100000")
    assert_one_line_error(result, "width must be an even number of pixels from 16 to 8190")


def test_exit_codes_are_documented_in_help() -> None:
    for args in ([], ["data", "cache"], ["data", "transcode"]):
        text = " ".join(run_flatkd(*args, "--help").output.split())
        assert "3 finished, but some" in text, args


# ---- item 8: transcode ------------------------------------------------------------------------


def test_transcode_skips_only_what_it_made_from_the_same_source_and_settings(tmp_path: Path) -> None:
    sources = tmp_path / "in"
    sources.mkdir()
    source = sources / "clip.m4v"
    encode_frames(moving_texture(12, 32, 32), source, EncodeSettings(width=32, height=32))
    out = tmp_path / "out"
    assert run_flatkd("data", "transcode", str(source), "--out", str(out), "--size", "32x32").exit_code == 0
    same = run_flatkd("data", "transcode", str(source), "--out", str(out), "--size", "32x32")
    assert "transcoded 0, skipped 1" in same.stdout
    other = run_flatkd("data", "transcode", str(source), "--out", str(out), "--size", "48x32")
    assert "transcoded 1, skipped 0" in other.stdout
    assert CompressedVideo(out / "clip.mp4").info.width == 48
    encode_frames(moving_texture(8, 32, 32, seed=9), source, EncodeSettings(width=32, height=32))
    replaced = run_flatkd("data", "transcode", str(source), "--out", str(out), "--size", "48x32")
    assert "transcoded 1, skipped 0" in replaced.stdout
    assert CompressedVideo(out / "clip.mp4").info.frame_count == 8
    (out / "clip.mp4").write_bytes(b"")  # made by someone else
    (out / "transcode.json").unlink()
    foreign = run_flatkd("data", "transcode", str(source), "--out", str(out), "--size", "48x32")
    assert "transcoded 1, skipped 0" in foreign.stdout


def test_transcode_refuses_out_equal_to_a_source_folder(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    encode_frames(moving_texture(6, 32, 32), source, EncodeSettings(width=32, height=32))
    before = source.read_bytes()
    result = run_flatkd("data", "transcode", str(source), "--out", str(tmp_path))
    assert_one_line_error(result, "is the folder of the source", "choose another --out")
    assert source.read_bytes() == before


def test_transcode_warns_when_fewer_frames_decode_than_declared(tmp_path: Path) -> None:
    source = tmp_path / "long.mp4"
    encode_frames(moving_texture(48, 32, 32), source, EncodeSettings(width=32, height=32))
    data = source.read_bytes()
    cut = tmp_path / "cut.mp4"
    # an MP4 whose index (moov, at the end for FFmpeg's muxer) is intact but whose media is cut:
    # move the index first so that the container still declares 48 frames
    import av

    with av.open(str(source)) as container:
        declared = container.streams.video[0].frames
    assert declared == 48
    faststart = tmp_path / "fast.mp4"
    with av.open(str(source)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            dst.mux(packet)
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    result = run_flatkd("data", "transcode", str(cut), "--out", str(tmp_path / "o"), "--size", "32x32")
    assert result.exit_code == 0, result.output
    assert "flatkd: warning: " in result.stderr and "of the 48 frames the container declares" in result.stderr


def test_transcode_reads_what_it_can_and_reports_the_rest(tmp_path: Path) -> None:
    good = tmp_path / "in" / "good.m4v"
    good.parent.mkdir()
    encode_frames(moving_texture(6, 32, 32), good, EncodeSettings(width=32, height=32))
    folder = tmp_path / "in" / "folder.mp4"
    folder.mkdir()
    garbage = tmp_path / "in" / "garbage.avi"
    garbage.write_bytes(os.urandom(600))
    missing = tmp_path / "in" / "missing.mp4"
    result = run_flatkd(
        "data", "transcode", str(good), str(folder), str(garbage), str(missing), "--out", str(tmp_path / "o"), "-j", "1"
    )
    assert result.exit_code == 3, result.output
    assert "transcoded 1," in result.stdout and "failed 3" in result.stdout
    for name in ("folder.mp4", "garbage.avi", "missing.mp4"):
        assert name in result.stderr


# ---- item 5: worker pools end with their parent ---------------------------------------------


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killing_data_cache_leaves_no_worker_alive(small_set: Path, tmp_path: Path, sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "flatkd", "data", "cache", str(small_set), "--out", str(tmp_path / "c")]
    process = subprocess.Popen(
        [*command, "--jobs", "2", "--size", "32"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(_session_processes(process.pid)) >= 3 and list((tmp_path / "c").rglob("meta.json")):
            break  # the parent, its workers (and the resource tracker) are running, videos are done
        time.sleep(0.01)
    assert process.poll() is None, "the build ended before it could be killed"
    os.kill(process.pid, sig)
    process.wait()
    time.sleep(10)
    leftover = _session_processes(process.pid)
    for pid in leftover:  # do not leave them behind for the other tests either
        os.kill(pid, signal.SIGKILL)
    assert leftover == []
