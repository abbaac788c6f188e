"""``flatkd data cache``: decode a dataset's videos once into the modality cache."""

from __future__ import annotations

from pathlib import Path

import click

from flatkd.cli.common import EXIT_SOME_FAILED, progress
from flatkd.data.cache import CacheSettings, build_cache, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.splits import SPLITS


@click.command()
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache directory  [default: DATASET_DIR/cache].",
)
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=CacheSettings.size,
    show_default=True,
    help="Shorter side of the stored frames in pixels (larger sources are shrunk, aspect kept).",
)
@click.option("--source-size", is_flag=True, help="Store frames at the source size instead of --size.")
@click.option(
    "--accumulate/--no-accumulate",
    default=CacheSettings.accumulate,
    show_default=True,
    help="Trace motion vectors and residuals back to the GOP's I-frame (CoViAR) or to the previous frame.",
)
@click.option(
    "--split",
    type=click.Choice(["all", *map(str, SPLITS)]),
    default="all",
    show_default=True,
    help="Cache the videos listed in this split only.",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all CPUs]."
)
def cache(
    dataset_dir: Path,
    out: Path | None,
    size: int,
    source_size: bool,
    accumulate: bool,
    split: str,
    jobs: int | None,
) -> None:
    """Decode every video of DATASET_DIR once and store what training reads: the I-frame of every
    GOP and the motion vectors and residual of every P-frame, shrunk to --size, as memory-mappable
    arrays with a manifest.json of per-video records.

    DATASET_DIR is a `flatkd data synth` output or a UCF-101 / HMDB-51 tree (split lists and
    videos are found automatically; see `flatkd.data.splits`). The videos must be MPEG-4 Part 2 or
    H.264 without B-frames (`flatkd data transcode` converts others).

    \b
    Example:
      flatkd data cache data/synth                 # -> data/synth/cache
      flatkd data cache data/ucf101 --size 256 --jobs 8

    A killed run continues where it stopped when started again (finished videos are kept). Videos
    that cannot be decoded (damaged, B-frames, a frame size that changes mid-stream, ...) are
    listed on stderr and, with the reason, in the manifest, and skipped while the rest are cached.

    Exit status: 0 all cached; 2 an error before anything was done (one line); 3 finished, but
    some videos failed.
    """
    settings = CacheSettings(size=None if source_size else size, accumulate=accumulate)
    splits = SPLITS if split == "all" else (int(split),)
    samples = list_videos(dataset_dir, splits)
    out = default_cache_dir(dataset_dir) if out is None else out
    report = build_cache(samples, out, settings, jobs=jobs, progress=progress)
    for key, error in report.failed.items():
        click.echo(f"flatkd: failed: {key}: {error}", err=True)
    click.echo(
        f"{out}: {report.cached} videos cached, {report.kept} already cached, {len(report.failed)} failed"
    )
    if report.failed:
        click.get_current_context().exit(EXIT_SOME_FAILED)
