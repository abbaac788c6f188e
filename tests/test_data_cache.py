"""The modality cache: contents against the codec's random access, storage conversion, resuming
after a kill, corrupt videos, settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flatkd.cli import cli
from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.cache.storage import storage_size, store_iframe, store_mv, store_residual
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import list_videos, open_dataset
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.errors import ConfigError, MissingPrerequisiteError

SET = SynthSettings(classes=4, clips_per_class=6, clips_per_group=2, frames=26, width=64, height=48, seed=5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(root, SET, jobs=1)
    return root


def _arrays(cache: Path) -> dict[str, bytes]:
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*.zst"))}


def test_cache_holds_exactly_the_codecs_iframes_motion_and_residuals(dataset: Path, tmp_path: Path) -> None:
    samples = list_videos(dataset)
    report = build_cache(samples, tmp_path, CacheSettings(size=None), jobs=1)
    assert (report.cached, report.kept, report.failed) == (24, 0, {})
    cache = ModalityCache(tmp_path)
    sample = samples[7]
    entry = cache.entry(sample.video)
    assert entry.ok and entry.types == "I" + "P" * 11 + "I" + "P" * 11 + "IP"
    assert entry.size == (48, 64)
    assert list(entry.p_frames[[0, 10, 11, 21, 22]]) == [1, 11, 13, 23, 25]
    assert list(entry.gop_of_p[[0, 10, 11, 21, 22]]) == [0, 0, 1, 1, 2]
    reference = CompressedVideo(sample.path).read(np.arange(26), accumulate=True)
    iframe, mv, residual = (cache.load(sample.video, m) for m in ("iframe", "mv", "residual"))
    assert iframe.dtype == np.uint8 and mv.dtype == np.int8 and residual.dtype == np.int8
    np.testing.assert_array_equal(iframe, reference.rgb[[0, 12, 24]])
    np.testing.assert_array_equal(mv, np.clip(reference.mv[entry.p_frames], -128, 127))
    np.testing.assert_array_equal(residual, np.clip(reference.residual[entry.p_frames], -128, 127))
    assert np.abs(mv).max() > 0 and np.abs(residual).max() > 0
    rows = cache.read(sample.video, "residual", np.array([3, 3, 20]), top=5, height=30)
    np.testing.assert_array_equal(rows, residual[[3, 3, 20], 5:35])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["settings"] == CacheSettings(size=None).record()
    assert len(manifest["videos"]) == 24
    assert manifest["videos"][sample.video]["bytes"] == sum(
        (tmp_path / "videos" / sample.video / f"{m}.zst").stat().st_size for m in ("iframe", "mv", "residual")
    )


def test_no_accumulate_stores_motion_to_the_previous_frame(dataset: Path, tmp_path: Path) -> None:
    sample = list_videos(dataset)[2]
    build_cache([sample], tmp_path, CacheSettings(size=None, accumulate=False), jobs=1)
    reference = CompressedVideo(sample.path).read([5, 17], accumulate=False)
    mv = ModalityCache(tmp_path).load(sample.video, "mv")
    np.testing.assert_array_equal(mv[[4, 15]], np.clip(reference.mv, -128, 127))


def test_storage_conversion_matches_hand_computed_values() -> None:
    assert storage_size(256, 340, 128) == (128, 170)
    assert storage_size(48, 64, 128) == (48, 64)
    assert storage_size(48, 64, None) == (48, 64)
    # a constant motion field keeps its value under resizing and is scaled with the image
    mv = np.broadcast_to(np.array([6, -4], dtype=np.int16), (2, 8, 12, 2))
    halved = np.broadcast_to(np.array([3, -2], np.int8), (2, 4, 6, 2))
    np.testing.assert_array_equal(store_mv(mv, (4, 6)), halved)
    clipped = np.broadcast_to(np.array([127, -128], np.int8), mv.shape)
    np.testing.assert_array_equal(store_mv(mv * 40, (8, 12)), clipped)
    # halving with the antialiased (triangle, PIL-style) filter: output pixel 0 sits at x = 1 and
    # weighs the pixels at 0.5, 1.5, 2.5 by 0.75, 0.75, 0.25: values 0, 10, 20, 30 ->
    # (7.5 + 5) / 1.75 = 7.1 and (2.5 + 15 + 22.5) / 1.75 = 22.9
    ramp = np.broadcast_to((np.arange(4) * 10).astype(np.uint8)[None, :, None], (2, 4, 3)).copy()
    np.testing.assert_array_equal(store_iframe(ramp, (1, 2))[0, :, 0], [7, 23])
    residual = np.full((2, 2, 3), -300, dtype=np.int16)
    assert (store_residual(residual, (2, 2)) == -128).all()


def test_resized_cache_scales_frames_and_motion(dataset: Path, tmp_path: Path) -> None:
    sample = list_videos(dataset)[0]
    build_cache([sample], tmp_path, CacheSettings(size=24), jobs=1)
    cache = ModalityCache(tmp_path)
    assert cache.entry(sample.video).size == (24, 32)
    reference = CompressedVideo(sample.path).read([0, 6])
    stored_iframe = cache.load(sample.video, "iframe")[0]
    np.testing.assert_array_equal(stored_iframe, store_iframe(reference.rgb[0], (24, 32)))
    np.testing.assert_array_equal(cache.load(sample.video, "mv")[5], store_mv(reference.mv[1], (24, 32)))


def _cache_command(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "flatkd", "data", "cache", str(dataset)] + [
        "--out", str(out), "--jobs", "1", "--size", "32"
    ]


def test_a_killed_build_resumes_without_redoing_finished_videos(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    command = _cache_command(dataset, out)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.rglob("meta.json"))) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), "the build was killed before it finished"
    done = {meta.parent: meta.stat().st_mtime_ns for meta in out.rglob("meta.json")}
    assert 2 <= len(done) < 24
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for d in done for p in d.glob("*.zst")}
    with pytest.raises(MissingPrerequisiteError, match="incomplete"):
        ModalityCache(out)

    report = build_cache(list_videos(dataset), out, CacheSettings(size=32), jobs=2)
    assert report.kept == len(done) and report.cached == 24 - len(done) and not report.failed
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stamps} == stamps
    assert not [p for p in out.rglob(".*")], "no temporary files left behind"
    assert len(ModalityCache(out).entries) == 24
    build_cache(list_videos(dataset), tmp_path / "fresh", CacheSettings(size=32), jobs=1)
    assert _arrays(out) == _arrays(tmp_path / "fresh")


def test_corrupt_videos_are_listed_and_skipped(
    dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data, ignore=shutil.ignore_patterns("cache"))
    videos = sorted((data / "videos").rglob("*.avi"))
    videos[0].write_bytes(videos[0].read_bytes()[:900])
    videos[1].write_text("not a video\n")
    videos[2].unlink()
    result = CliRunner().invoke(cli, ["data", "cache", str(data), "--jobs", "2"])
    assert result.exit_code == 3
    failed_lines = [line for line in result.output.splitlines() if line.startswith("flatkd: failed: ")]
    assert len(failed_lines) == 3
    assert "21 videos cached, 0 already cached, 3 failed" in result.output
    cache = ModalityCache(data / "cache")
    bad = {videos[i].relative_to(data / "videos").with_suffix("").as_posix() for i in range(3)}
    assert {k for k, e in cache.entries.items() if not e.ok} == bad
    deleted = videos[2].relative_to(data / "videos").with_suffix("").as_posix()
    assert "no such video file" in cache.entry(deleted).error
    splits = open_dataset(data, val_fraction=0)
    everything = splits.train + splits.test
    dataset_ = ClipDataset(everything, cache, train=False)
    assert len(dataset_) == 21
    assert "leaving out 3 videos" in caplog.text


def test_changed_settings_and_missing_caches_are_refused(dataset: Path, tmp_path: Path) -> None:
    samples = list_videos(dataset)[:2]
    build_cache(samples, tmp_path, CacheSettings(size=32), jobs=1)
    with pytest.raises(ConfigError, match="other settings"):
        build_cache(samples, tmp_path, CacheSettings(size=40), jobs=1)
    with pytest.raises(MissingPrerequisiteError, match="flatkd data cache"):
        ModalityCache(tmp_path / "nothing")
    (tmp_path / "videos" / samples[0].video / "mv.zst").unlink()
    with pytest.raises(MissingPrerequisiteError, match="mv.zst is missing"):
        ClipDataset(samples, tmp_path, train=False)[0]
    assert build_cache(samples, tmp_path, CacheSettings(size=32), jobs=1).cached == 1, "the damage is repaired"
    with pytest.raises(MissingPrerequisiteError, match="1 of 3 videos .* not in the cache"):
        ClipDataset([*samples, list_videos(dataset)[5]], tmp_path, train=False)


def test_a_changed_source_is_cached_again(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    samples = list_videos(data)[:3]
    build_cache(samples, tmp_path / "cache", CacheSettings(size=32), jobs=1)
    os.utime(samples[1].path, ns=(0, 0))
    report = build_cache(samples, tmp_path / "cache", CacheSettings(size=32), jobs=1)
    assert (report.cached, report.kept) == (1, 2)
