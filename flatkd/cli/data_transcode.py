"""``flatkd data transcode``: convert videos to the format flatkd reads exactly."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flatkd.cli.common import EXIT_SOME_FAILED, progress
from flatkd.codec.encode import CANONICAL, FITS, EncodeSettings
from flatkd.codec.transcode import CONTAINER_CHOICES, transcode_all


def parse_size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    """``WxH`` -> ``(width, height)``."""
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 340x256") from None
    return width, height


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory.",
)
@click.option(
    "--format",
    "codec",
    type=click.Choice(["mpeg4", "h264"]),
    default="mpeg4",
    show_default=True,
    help="mpeg4: MPEG-4 Part 2 as CoViAR; h264: libx264 with one reference frame.",
)
@click.option(
    "--size",
    default=f"{CANONICAL.width}x{CANONICAL.height}",
    show_default=True,
    callback=parse_size,
    metavar="WxH",
    help="Output frame size WxH (even numbers).",
)
@click.option(
    "--fit",
    type=click.Choice(FITS),
    default=CANONICAL.fit,
    show_default=True,
    help="A source of another aspect ratio: crop (centred window), pad (black bars) or stretch (CoViAR; distorts).",
)
@click.option(
    "--gop", default=CANONICAL.gop, show_default=True, help="Frames per GOP (one I-frame, then P-frames)."
)
@click.option(
    "--quantiser",
    type=int,
    default=None,
    help="Fixed quantiser (MPEG-4 1-31, default 2; H.264 0-51, default 23).",
)
@click.option(
    "--container",
    type=click.Choice(CONTAINER_CHOICES),
    default="mp4",
    show_default=True,
    help="raw: a bare .m4v / .h264 stream.",
)
@click.option(
    "--max-frames",
    type=click.IntRange(min=1),
    default=None,
    help="Keep only the first N frames (quick previews).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Parallel worker processes.",
)
@click.pass_context
def transcode(
    ctx: click.Context,
    sources: tuple[Path, ...],
    out_dir: Path,
    codec: str,
    size: tuple[int, int],
    fit: str,
    gop: int,
    quantiser: int | None,
    container: str,
    max_frames: int | None,
    jobs: int,
) -> None:
    """Re-encode SOURCES (any video FFmpeg reads, B-frames included) into OUT/<name>.<ext>:
    by default CoViAR's format, MPEG-4 Part 2 at 340x256 with a GOP of 12 frames, P-frames only
    and a fixed quantiser; a source of another aspect ratio is centre-cropped to it (--fit). A
    folder among SOURCES stands for every video below it, written to the
    same place below OUT, so class folders are kept (`flatkd data transcode raw --out canon`, then
    `flatkd data lists canon`).

    An output is skipped only when OUT/transcode.json records that it was made from the same
    source (path, size, modification time) with the same settings; outputs are written
    atomically, so an existing one is complete. --out may not be the folder of a source file nor
    lie in a source folder. A source that fails (unreadable, not a video, damaged, a folder without
    videos) is reported and the others go on; a source that decodes to fewer frames than its
    container declares is transcoded with a warning.

    Exit status: 0 all done; 2 an error before anything was done (one line); 3 finished, but some
    sources failed (each named on stderr).
    """
    settings = EncodeSettings(codec=codec, width=size[0], height=size[1], gop=gop, quantiser=quantiser, fit=fit)
    results = transcode_all(
        sources, out_dir, settings, container=container, jobs=jobs, max_frames=max_frames, progress=progress
    )
    for result in results:
        if result.warning:
            click.echo(f"flatkd: warning: {result.warning}", err=True)
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        click.echo(f"flatkd: error: {result.error}", err=True)
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    click.echo(f"transcoded {done}, skipped {skipped} (made before from the same source and settings), failed {len(failed)} -> {out_dir}")
    if failed:
        names = ", ".join(r.source.name for r in failed)
        click.echo(f"flatkd: error: {len(failed)} of {len(results)} files failed: {names}", err=True)
        ctx.exit(EXIT_SOME_FAILED)
