"""I-frames decoded on the fly from the videos (``flatkd train --source videos``): the very tensors
the cache path gives for the same seed and indices, training without any cache, and a one-line
error for motion vectors and residuals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.videos import transcoded

from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import list_videos
from flatkd.data.splits import Sample
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.data.video_frames import VideoIFrames
from flatkd.errors import ConfigError

SET = SynthSettings(classes=4, clips_per_class=8, clips_per_group=2, frames=26, width=64, height=48, seed=4)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic set with no cache."""
    root = tmp_path_factory.mktemp("synth-videos")
    generate_synthetic(root, SET, jobs=1)
    return root


def test_iframes_from_the_videos_are_the_cached_tensors(
    videos: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    real = transcoded(tmp_path_factory, "bikes")  # 60 frames of a real clip at 340x256 (5 GOPs)
    samples = [*list_videos(videos)[:3], Sample(path=real, video="real/bikes", label=1, group=9)]
    for size in (32, 128):
        build_cache(samples, tmp_path / f"c{size}", CacheSettings(size=size, modalities=("iframe",)), jobs=1)
        cache = ModalityCache(tmp_path / f"c{size}")
        for train in (True, False):
            common = {"modalities": ("iframe",), "train": train, "num_segments": 3, "input_size": 48, "seed": 7}
            cached = ClipDataset(samples, cache, **common)
            decoded = ClipDataset(samples, VideoIFrames(samples, size), **common)
            for epoch in (0, 1):
                cached.set_epoch(epoch)
                decoded.set_epoch(epoch)
                for i in range(len(samples)):
                    (a, label_a), (b, label_b) = cached[i], decoded[i]
                    assert label_a == label_b
                    assert a["iframe"].shape == (3, 3, 48, 48) and a["iframe"].std() > 0
                    torch.testing.assert_close(b["iframe"], a["iframe"], rtol=0, atol=0)
        entry = VideoIFrames(samples, size).entry("real/bikes")
        assert entry.size == cache.entry("real/bikes").size and entry.types == cache.entry("real/bikes").types
        np.testing.assert_array_equal(
            VideoIFrames(samples, size).read("real/bikes", "iframe", np.array([4, 0]), 2, 9),
            cache.read("real/bikes", "iframe", np.array([4, 0]), 2, 9),
        )


def test_unreadable_videos_are_left_out_and_other_modalities_refused(videos: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    samples = [*list_videos(videos)[:2], Sample(path=broken, video="x/broken", label=0, group=0)]
    source = VideoIFrames(samples)
    assert not source.entry("x/broken").ok and "broken.mp4" in source.entry("x/broken").error
    assert len(ClipDataset(samples, source, ("iframe",), train=True)) == 2
    with pytest.raises(ConfigError, match="I-frames only, not mv"):
        ClipDataset(samples[:2], source, ("iframe", "mv"), train=True)[0]


def test_train_reads_iframes_from_the_videos_without_a_cache(videos: Path, tmp_path: Path) -> None:
    fast = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4",
            "--epochs", "1", "--ic-epochs", "1"]
    result = run_flatkd("train", "--data", str(videos), "--modality", "iframe", "--source", "videos",
                        "--run", str(tmp_path / "run"), *fast)
    assert result.exit_code == 0, result.output
    assert "iframe" in result.output and not (videos / "cache").exists()
    refused = run_flatkd("train", "--data", str(videos), "--modality", "residual", "--source", "videos",
                         "--run", str(tmp_path / "run2"), *fast)
    assert_one_line_error(refused, "--source videos reads I-frames only, not residual")
