"""``flatkd data cache``: decode a dataset's videos once into the modality cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flatkd.cli.common import EXIT_SOME_FAILED, progress
from flatkd.data.cache.layout import CacheSettings, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.splits import SPLITS
from flatkd.modalities import MODALITIES

# the builder (and torch) is imported inside the command: `--help` imports no torch
if TYPE_CHECKING:
    from flatkd.data.cache.estimate import CacheEstimate


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
    help="Cache the videos listed in this split only; all: in every split the dataset has lists for.",
)
@click.option(
    "--modalities",
    default=",".join(MODALITIES),
    show_default=True,
    help="Comma-separated modalities to store (cache only what the runs train on).",
)
@click.option(
    "--residual-step",
    type=click.IntRange(1, 64),
    default=CacheSettings.residual_step,
    show_default=True,
    help="Lossy: round residuals to multiples of this (error <= step // 2 per value); 1 is lossless.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the bytes the build would write, per modality, and the free space; write nothing.",
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
    modalities: str,
    residual_step: int,
    dry_run: bool,
    jobs: int | None,
) -> None:
    """Decode every video of DATASET_DIR once and store what training reads: the I-frame of every
    GOP and the motion vectors and residual of every P-frame, shrunk to --size, one zstd chunk per
    frame (lossless unless --residual-step), with a manifest.json of per-video records.

    DATASET_DIR is a `flatkd data synth` output or a UCF-101 / HMDB-51 tree (split lists and
    videos are found automatically; see `flatkd.data.splits`). The videos must be MPEG-4 Part 2 or
    H.264 without B-frames (`flatkd data transcode` converts others).

    \b
    Example:
      flatkd data cache data/synth                 # -> data/synth/cache
      flatkd data cache data/ucf101 --size 256 --jobs 8
      flatkd data cache data/ucf101 --modalities iframe,mv --dry-run

    A killed run continues where it stopped when started again (finished videos are kept). Videos
    that cannot be decoded (damaged, B-frames, a frame size that changes mid-stream, ...) are
    listed on stderr and, with the reason, in the manifest, and skipped while the rest are cached.
    A build that would not fit on the disk is refused before it starts; a disk that fills up all
    the same stops it (finished videos stay cached, and a cache that was complete before still
    opens).

    Exit status: 0 all cached; 2 an error (one line: bad input, no space left, ...); 3 finished,
    but some videos failed.
    """
    from flatkd.data.cache.build import build_cache, pending
    from flatkd.data.cache.estimate import estimate_cache, free_bytes

    wanted = tuple(m.strip() for m in modalities.split(",") if m.strip())
    settings = CacheSettings(
        size=None if source_size else size,
        accumulate=accumulate,
        modalities=wanted,  # type: ignore[arg-type]  # CacheSettings checks the names
        residual_step=residual_step,
    )
    splits = None if split == "all" else (int(split),)
    samples = list_videos(dataset_dir, splits)
    out = default_cache_dir(dataset_dir) if out is None else out
    if dry_run:
        todo = pending(samples, out, settings)
        _print_estimate(estimate_cache(todo, settings), free_bytes(out), out)
        return
    report = build_cache(samples, out, settings, jobs=jobs, progress=progress)
    for key, error in report.failed.items():
        click.echo(f"flatkd: failed: {key}: {error}", err=True)
    click.echo(
        f"{out}: {report.cached} videos cached, {report.kept} already cached, {len(report.failed)} failed"
    )
    if report.failed:
        click.get_current_context().exit(EXIT_SOME_FAILED)


def _print_estimate(estimate: CacheEstimate, free: int, out: Path) -> None:
    """The ``--dry-run`` report: bytes per modality and in all, against the free space."""
    click.echo(
        f"{out}: {estimate.videos} videos ({estimate.frames} frames) to cache; bytes measured on "
        f"{estimate.sampled} of them ({estimate.sampled_frames} frames)"
    )
    for modality, count in estimate.bytes.items():
        per_frame = count / estimate.frames if estimate.frames else 0.0
        click.echo(f"  {modality:9s} {count:>16,d} bytes  {count / 1e9:9.3f} GB  {per_frame / 1e3:8.1f} kB/frame")
    verdict = "fits" if estimate.total <= free else "does NOT fit"
    click.echo(f"  {'total':9s} {estimate.total:>16,d} bytes  {estimate.total / 1e9:9.3f} GB")
    click.echo(f"free on its disk: {free:,d} bytes ({free / 1e9:.3f} GB): the build {verdict}")
