"""``flatkd data extract``: I-frames, motion vectors and residuals of chosen frames, to .npz."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from flatkd.codec.reader import CompressedVideo
from flatkd.fileio import atomic_path


def parse_frames(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    """``0,5,11`` or ranges ``0-11`` (inclusive), mixed -> frame indices."""
    frames: list[int] = []
    try:
        for part in value.split(","):
            first, _, last = part.strip().partition("-")
            low, high = int(first), int(last or first)
            if high < low:
                raise ValueError
            frames.extend(range(low, high + 1))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list like 0,5,11 or 0-11") from None
    return frames


def _npz_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix != ".npz":
        raise click.BadParameter(f"{value} must end in .npz")
    return value


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--frames",
    required=True,
    callback=parse_frames,
    metavar="LIST",
    help="Frame indices: 0,5,11 or 0-11 (decoding order).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_npz_path,
    help="Output .npz file.",
)
@click.option(
    "--accumulate/--no-accumulate",
    default=True,
    show_default=True,
    help="Trace motion and residual back to the GOP's I-frame (CoViAR), or to the previous frame.",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw I-frame | motion | residual per frame to this PNG.",
)
def extract(file: Path, frames: list[int], out: Path, accumulate: bool, preview: Path | None) -> None:
    """Extract CoViAR's three inputs for chosen FRAMES of FILE (MPEG-4 Part 2 or H.264 without
    B-frames; `flatkd data transcode` converts anything else).

    The .npz holds, for N frames of H x W pixels: indices, gop_starts, picture_types, iframes and
    rgb (uint8 [N,H,W,3]), mv (int16 [N,H,W,2], (x, y) = destination - source in pixels) and
    residual (int16 [N,H,W,3], RGB, decoded frame minus motion-compensated reference), accumulated.
    """
    video = CompressedVideo(file)
    result = video.read(frames, accumulate=accumulate)
    with atomic_path(out) as tmp:
        np.savez_compressed(
            tmp,
            indices=result.indices,
            gop_starts=result.gop_starts,
            picture_types=np.array(list(result.picture_types)),
            iframes=result.iframes,
            rgb=result.rgb,
            mv=result.mv,
            residual=result.residual,
            accumulated=np.array(result.accumulated),
        )
    size = f"{video.info.width}x{video.info.height}"
    click.echo(f"wrote {out}: {len(frames)} frames ({result.picture_types}) of {size}")
    if preview is not None:
        from flatkd.plots import save_figure
        from flatkd.plots.flow import compressed_preview

        titles = [
            f"frame {k} ({t}), GOP {g}"
            for k, t, g in zip(result.indices, result.picture_types, result.gop_starts, strict=True)
        ]
        fig = compressed_preview(result.iframes, result.mv, result.residual, titles, accumulate)
        for path in save_figure(fig, preview):
            click.echo(f"wrote {path}")
