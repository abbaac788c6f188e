"""Cache format 2: the same arrays as format 1, --modalities, the lossy residual step, full disks
(one line, exit 2, no partial folder, the finished cache still opens), the --dry-run estimate."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cache_v1 import write_format1
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.videos import transcoded

from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.cache import chunks
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import list_videos
from flatkd.data.splits import Sample
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.errors import ConfigError, InputFileError, MissingPrerequisiteError, OutputWriteError
from flatkd.modalities import MODALITIES

SET = SynthSettings(classes=4, clips_per_class=3, clips_per_group=2, frames=26, width=64, height=48, seed=9)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth2")
    generate_synthetic(root, SET, jobs=1)
    return root


def _assert_same_cache(new: ModalityCache, old: ModalityCache) -> None:
    assert new.entries.keys() == old.entries.keys()
    for key, entry in old.entries.items():
        assert new.entry(key).types == entry.types and new.entry(key).size == entry.size
        for modality in MODALITIES:
            expected = np.asarray(old.load(key, modality))
            np.testing.assert_array_equal(new.load(key, modality), expected)
            rows = np.array([entry.count(modality) - 1, 0, 0])
            np.testing.assert_array_equal(new.read(key, modality, rows, 3, 7), expected[rows, 3:10])


def test_format2_returns_exactly_the_arrays_of_format1(
    dataset: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    real = transcoded(tmp_path_factory, "bikes")  # 60 frames of a real clip at 340x256
    samples = [*list_videos(dataset)[:3], Sample(path=real, video="real/bikes", label=0, group=0)]
    for size in (32, 128):
        write_format1(samples, tmp_path / f"v1-{size}", size)
        build_cache(samples, tmp_path / f"v2-{size}", CacheSettings(size=size), jobs=1)
        old, new = ModalityCache(tmp_path / f"v1-{size}"), ModalityCache(tmp_path / f"v2-{size}")
        assert (old.format, new.format) == (1, 2)
        _assert_same_cache(new, old)
        datasets = [ClipDataset(samples, cache, train=True, input_size=32, seed=3) for cache in (old, new)]
        for i in range(len(samples)):
            (a, _), (b, _) = (d[i] for d in datasets)
            assert all(torch.equal(a[m], b[m]) for m in MODALITIES)
    record = new.entry("real/bikes").record
    assert record["bytes"] == sum(record["modality_bytes"].values())
    assert record["bytes"] * 3 < old.entry("real/bikes").record["bytes"], "format 2 compresses"


def test_a_format1_cache_is_read_only_and_the_refusal_names_the_conversion(dataset: Path, tmp_path: Path) -> None:
    samples = list_videos(dataset)[:1]
    write_format1(samples, tmp_path / "old", 32)
    with pytest.raises(ConfigError, match="format-1 cache.*--out NEW_DIR"):
        build_cache(samples, tmp_path / "old", CacheSettings(size=32), jobs=1)


def test_modalities_stores_only_those_asked_for(dataset: Path, tmp_path: Path) -> None:
    samples = list_videos(dataset)[:2]
    result = run_flatkd("data", "cache", str(dataset), "--out", str(tmp_path), "--modalities", "mv,iframe",
                        "--size", "32", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "videos" / samples[0].video).iterdir()) == [
        "iframe.zst", "meta.json", "mv.zst"
    ]
    cache = ModalityCache(tmp_path)
    assert cache.modalities == ("iframe", "mv")
    assert ClipDataset(samples, cache, ("mv", "iframe"), train=False)[0][0]["mv"].shape[1] == 2
    with pytest.raises(MissingPrerequisiteError, match="not residual: build one with --modalities"):
        ClipDataset(samples, cache, train=False)[0]
    with pytest.raises(ConfigError, match="cache modalities"):
        CacheSettings(modalities=("depth",))  # type: ignore[arg-type]


def test_lossy_residual_step_errs_at_most_half_a_step(dataset: Path, tmp_path: Path) -> None:
    samples = list_videos(dataset)[:2]
    build_cache(samples, tmp_path / "exact", CacheSettings(size=32), jobs=1)
    build_cache(samples, tmp_path / "lossy", CacheSettings(size=32, residual_step=4), jobs=1)
    exact, lossy = ModalityCache(tmp_path / "exact"), ModalityCache(tmp_path / "lossy")
    for sample in samples:
        a = exact.load(sample.video, "residual").astype(np.int16)
        b = lossy.load(sample.video, "residual").astype(np.int16)
        assert np.abs(a - b).max() <= 2 and (b[np.abs(b) < 124] % 4 == 0).all()
        np.testing.assert_array_equal(exact.load(sample.video, "mv"), lossy.load(sample.video, "mv"))
        bytes_ = [c.entry(sample.video).record["modality_bytes"]["residual"] for c in (exact, lossy)]
        assert bytes_[1] < bytes_[0]


class _FullDisk:
    """A disk with ``left`` bytes free for chunk files: writes beyond them fail with ENOSPC."""

    def __init__(self, left: int) -> None:
        self.left = left

    def open(self, path: str, mode: str = "r") -> _FullDisk.File:
        return _FullDisk.File(open(path, mode), self)

    class File:
        def __init__(self, handle: object, disk: _FullDisk) -> None:
            self.handle, self.disk = handle, disk

        def __enter__(self) -> _FullDisk.File:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            self.disk.left -= len(data)
            if self.disk.left < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)  # type: ignore[attr-defined,no-any-return]


def _fill_disk(monkeypatch: pytest.MonkeyPatch, left: int) -> None:
    monkeypatch.setattr(chunks, "open", _FullDisk(left).open, raising=False)


def test_a_full_disk_is_one_line_exit_2_and_the_finished_cache_still_opens(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    build_cache(list_videos(dataset)[:5], out, CacheSettings(size=32), jobs=1)
    before = set(ModalityCache(out).entries)
    manifest = (out / "manifest.json").read_bytes()
    _fill_disk(monkeypatch, left=150_000)  # two videos more (~70 kB each), then the disk is full
    result = run_flatkd("data", "cache", str(dataset), "--out", str(out), "--size", "32", "--jobs", "1")
    assert_one_line_error(result, "no space left on device", str(out / "videos"))
    assert (out / "manifest.json").read_bytes() == manifest
    assert set(ModalityCache(out).entries) == before, "the finished cache still opens as it was"
    folders = {m.parent for m in out.rglob("meta.json")}
    assert len(folders) > len(before), "the disk filled up in the middle of the build"
    assert all(p.parent in folders for p in out.rglob("*.zst")), "no partial video folder"
    assert not list(out.rglob(".*")), "no temporary files"
    assert {p for p in (out / "videos").rglob("*") if p.is_dir() and not any(p.iterdir())} == set()
    monkeypatch.undo()
    again = run_flatkd("data", "cache", str(dataset), "--out", str(out), "--size", "32", "--jobs", "1")
    assert again.exit_code == 0 and len(ModalityCache(out).entries) == len(list_videos(dataset))


def test_a_build_that_does_not_fit_is_refused_before_it_starts(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flatkd.data.cache.build.free_bytes", lambda path: 1000)
    result = run_flatkd("data", "cache", str(dataset), "--out", str(tmp_path), "--size", "32", "--jobs", "1")
    assert_one_line_error(result, "no space left for this build", "GB free")
    assert not (tmp_path / "videos").exists()


def test_an_oserror_writing_a_chunk_file_removes_the_video_folder(dataset: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _fill_disk(monkeypatch, left=0)
    sample = list_videos(dataset)[0]
    with pytest.raises(OutputWriteError, match="iframe.zst: no space left on device"):
        build_cache([sample], tmp_path, CacheSettings(size=32), jobs=1)
    assert not (tmp_path / "videos" / sample.video).exists()


def test_dry_run_estimate_is_within_5_percent_of_the_built_size(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    common = ["data", "cache", str(dataset), "--out", str(out), "--size", "40", "--jobs", "1"]
    dry = run_flatkd(*common, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not out.exists(), "a dry run writes nothing"
    estimate = {m: int(n.replace(",", "")) for m, n in re.findall(r"^\s+(\w+)\s+([\d,]+) bytes", dry.output, re.M)}
    assert set(estimate) == {*MODALITIES, "total"}
    assert run_flatkd(*common).exit_code == 0
    records = [e.record for e in ModalityCache(out).entries.values()]
    real = {m: sum(r["modality_bytes"][m] for r in records) for m in MODALITIES}
    assert sum(real.values()) == sum(p.stat().st_size for p in out.rglob("*.zst"))
    for modality, size in real.items():
        assert abs(estimate[modality] - size) <= 0.05 * size, (modality, estimate[modality], size)
    assert abs(estimate["total"] - sum(real.values())) <= 0.05 * sum(real.values())
    assert "0 videos" in run_flatkd(*common, "--dry-run").output, "nothing left to cache"


def test_a_damaged_chunk_file_is_a_one_line_error(dataset: Path, tmp_path: Path) -> None:
    sample = list_videos(dataset)[0]
    build_cache([sample], tmp_path, CacheSettings(size=32), jobs=1)
    path = tmp_path / "videos" / sample.video / "mv.zst"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputFileError, match="corrupt cache file"):
        ModalityCache(tmp_path).read(sample.video, "mv", np.array([0]), 0, 4)


def test_a_rewritten_chunk_file_is_not_read_through_a_stale_handle(dataset: Path, tmp_path: Path) -> None:
    sample = list_videos(dataset)[0]
    for name, step in (("exact", 1), ("lossy", 8), ("again", 1)):
        build_cache([sample], tmp_path / name, CacheSettings(size=32, residual_step=step), jobs=1)
    exact, lossy = ModalityCache(tmp_path / "exact"), ModalityCache(tmp_path / "lossy")
    entry = exact.entry(sample.video)
    rows, shape = np.arange(entry.count("residual")), (*entry.size, 3)

    def residual(cache: ModalityCache) -> np.ndarray:
        return cache.read(sample.video, "residual", rows, 0, shape[0])

    first, other = residual(exact), residual(lossy)
    assert not np.array_equal(first, other)
    path = tmp_path / "exact" / "videos" / sample.video / "residual.zst"
    assert str(path) in chunks._reader.files, "the handle is kept"
    shutil.copyfile(tmp_path / "lossy" / path.relative_to(tmp_path / "exact"), path)  # same inode, new size
    np.testing.assert_array_equal(residual(exact), other)
    os.replace(tmp_path / "again" / path.relative_to(tmp_path / "exact"), path)  # a new inode
    np.testing.assert_array_equal(residual(exact), first)
    with pytest.raises(InputFileError, match="not the frame count its record says"):
        chunks.read_frames(str(path), len(rows) + 1, rows, shape, np.dtype(np.int8), 0, shape[0])


def test_open_chunk_files_are_bounded_and_a_forked_child_opens_its_own(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = list_videos(dataset)[0]
    build_cache([sample], tmp_path, CacheSettings(size=32), jobs=1)
    cache = ModalityCache(tmp_path)
    monkeypatch.setattr(chunks, "_reader", chunks._Reader())  # what other tests read is kept elsewhere
    monkeypatch.setattr(chunks, "OPEN_FILES", 2)
    handles = [chunks.open_chunk_file(cache._path(sample.video, m), cache.entry(sample.video).count(m))
               for m in MODALITIES]
    assert list(chunks._reader.files.values()) == handles[1:], "the least recently used is closed"
    with pytest.raises(OSError):
        os.fstat(handles[0].fd)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports how many files it holds, then leaves without cleanup
        try:
            os.write(write, str(len(chunks._reader.files)).encode())
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 16) == b"0" and os.waitpid(child, 0)[1] == 0
    os.close(read)
    assert len(chunks._reader.files) == 2, "the parent keeps its own"
