"""Clip loading from the modality cache against decoding on the fly, in the same run.

Both paths produce the same network inputs for the same samples (``ClipDataset`` training mode:
random TSN positions, multi-scale crop, flip; all three modalities; 112 px):

* **cache**: read the needed rows of ``iframe.npy``/``mv.npy``/``residual.npy`` (what
  ``ClipDataset[i]`` does before its transform);
* **on the fly** (the reference, what CoViAR's loader does): open the video, decode with
  :meth:`flatkd.codec.reader.CompressedVideo.read` only the sampled frames' GOPs up to each sampled
  frame (random access) and convert to the stored form.

"read" rates compare just that (what the cache replaces); "clip" rates add the transform both
paths share (flip, normalisation, resize), i.e. whole ``ClipDataset`` samples. Both paths
store through the same functions, so they give identical tensors (checked). By default the videos
are the synthetic set's 128 x 128 and the cache keeps that size; ``--video-size 320x240
--cache-size 128`` is closer to UCF-101 (decoding costs grow with the source, cache reads do not). Also reported:
cache and video bytes per video, and the cache build rate. Target (issue 3): cache >= 20x faster
than on-the-fly decoding. ``--probe`` also runs the linear-probe sanity check of
:mod:`flatkd.data.sanity` on a default-size synthetic set (the figures quoted in
:mod:`flatkd.data.synth.design`).

One thread (``torch.set_num_threads(1)``); each timing is the best of ``--repeats`` passes.

    .venv/bin/python benchmarks/loader.py [--video-size 320x240 --cache-size 128] [--samples 40]
                                          [--repeats 3] [--probe]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.cache.storage import store_iframe, store_mv, store_residual
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import list_videos, open_dataset
from flatkd.data.sanity import modality_probe
from flatkd.data.synth import SynthSettings, generate_synthetic

TARGET_SPEEDUP = 20.0


def decoded_windows(dataset: ClipDataset, index: int) -> dict[str, np.ndarray]:
    """The stored values inside the crop of ``dataset[index]``, decoded from the video instead of
    read from the cache."""
    sample, plan = dataset.samples[index], dataset.plan(index)
    entry = dataset.cache.entry(sample.video)
    gop_starts = np.flatnonzero(np.frombuffer(entry.types.encode(), dtype=np.uint8) == ord("I"))
    p_frames, i_frames = entry.p_frames[plan.p_rows], gop_starts[plan.gop_rows]
    decoded = CompressedVideo(sample.path).read(np.concatenate([i_frames, p_frames]))
    count, size, box = len(p_frames), entry.size, plan.box
    stored = {
        "iframe": store_iframe(decoded.rgb[:count], size),
        "mv": store_mv(decoded.mv[count:], size),
        "residual": store_residual(decoded.residual[count:], size),
    }
    rows, cols = slice(box.top, box.top + box.height), slice(box.left, box.left + box.width)
    return {m: a[:, rows, cols] for m, a in stored.items()}


def best_rates(run: Callable[[int], object], count: int, repeats: int) -> tuple[float, float]:
    """Items per second of ``run(i)`` for ``i < count``, in wall and in process CPU time, best of
    ``repeats`` passes (CPU time is less disturbed by other processes on a shared machine)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            run(i)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return count / wall, count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips-per-class", type=int, default=4)
    parser.add_argument("--video-size", default="128x128", help="WxH of the synthetic videos")
    parser.add_argument("--cache-size", type=int, default=None, help="stored short side (default: source)")
    parser.add_argument("--samples", type=int, default=40, help="clips timed per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe", action="store_true", help="also run the modality sanity probe")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        width, height = map(int, args.video_size.split("x"))
        settings = SynthSettings(
            clips_per_class=args.clips_per_class, clips_per_group=2, width=width, height=height
        )
        generate_synthetic(root / "data", settings, jobs=2)
        samples = list_videos(root / "data")
        start = time.perf_counter()
        build_cache(samples, root / "cache", CacheSettings(size=args.cache_size), jobs=1)
        build_seconds = time.perf_counter() - start
        cache = ModalityCache(root / "cache")
        frames = sum(len(e.types) for e in cache.entries.values())
        cache_bytes = np.mean([e.record["bytes"] for e in cache.entries.values()])
        video_bytes = np.mean([s.path.stat().st_size for s in samples])

        dataset = ClipDataset(samples, cache, train=True, input_size=112, seed=0)
        count = min(args.samples, len(dataset))
        for i in range(min(count, 8)):
            on_the_fly = dataset.transform(decoded_windows(dataset, i), dataset.plan(i))
            assert all(torch.equal(on_the_fly[m], dataset[i][0][m]) for m in on_the_fly), "the paths disagree"
        rates = {
            "read from cache": best_rates(
                lambda i: dataset.read_windows(i, dataset.plan(i)), count, args.repeats
            ),
            "decode on the fly": best_rates(lambda i: decoded_windows(dataset, i), count, args.repeats),
            "clip from cache": best_rates(dataset.__getitem__, count, args.repeats),
            "clip on the fly": best_rates(
                lambda i: dataset.transform(decoded_windows(dataset, i), dataset.plan(i)), count, args.repeats
            ),
        }
        mv_only = ClipDataset(samples, cache, ("mv",), train=True, input_size=112, seed=0)
        rates["clip from cache, mv only"] = best_rates(mv_only.__getitem__, count, args.repeats)

        size = f"{settings.width}x{settings.height}"
        stored = "x".join(map(str, next(iter(cache.entries.values())).size[::-1]))
        print(f"videos: {len(samples)} synthetic clips, {settings.frames} frames, {size}, stored at {stored}")
        build = f"{len(samples) / build_seconds:.1f} videos/s, {frames / build_seconds:.0f} frames/s"
        print(f"cache build (1 process): {build}")
        print(f"bytes per video: cache {cache_bytes / 1e6:.2f} MB, video file {video_bytes / 1e6:.3f} MB")
        print("clips/s (3 segments, 3 modalities unless said; clip = read + flip, normalise, resize to 112):")
        for name, (wall, cpu) in rates.items():
            print(f"  {name:26s} {wall:8.1f} wall  {cpu:8.1f} cpu   ({1e3 / cpu:.2f} ms/clip cpu)")
        for what in ("read", "clip"):
            cached = rates["read from cache" if what == "read" else "clip from cache"]
            decoded = rates["decode on the fly" if what == "read" else "clip on the fly"]
            speedup = cached[1] / decoded[1]
            verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
            target = f"{verdict} the {TARGET_SPEEDUP:.0f}x target"
            print(f"speed-up of the cache, {what}s (cpu): {speedup:.1f}x ({target})")

        if args.probe:
            probe_root = root / "probe"
            generate_synthetic(probe_root, SynthSettings(), jobs=2)
            build_cache(list_videos(probe_root), probe_root / "cache", jobs=2)
            splits = open_dataset(probe_root, val_fraction=0.0)
            accuracy = modality_probe(splits.train, splits.test, probe_root / "cache", splits.num_classes).accuracy()
            scores = " ".join(f"{name} {value:.3f}" for name, value in accuracy.items())
            chance = 1 / splits.num_classes
            print(f"linear probe, default synthetic set, split 1 test: {scores} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
