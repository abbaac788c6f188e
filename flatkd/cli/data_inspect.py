"""``flatkd data inspect``: the structure of video files, as a table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from flatkd.cli.common import EXIT_USER_ERROR
from flatkd.codec.probe import VideoInfo, find_size_change, probe
from flatkd.errors import FlatkdError

_HEADER = (
    "file",
    "container",
    "codec",
    "size",
    "frames",
    "fps",
    "GOP lengths",
    "B-frames",
    "refs",
    "readable",
)


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(path: Path, info: VideoInfo) -> tuple[str, ...]:
    return (
        str(path),
        info.container,
        info.codec,
        f"{info.width}x{info.height}",
        str(info.frame_count),
        "?" if info.fps is None else f"{info.fps:g}",
        info.gop_layout or "-",
        "yes" if info.has_b_frames else "no",
        "?" if info.reference_frames is None else str(info.reference_frames),
        "no" if info.problem() else "yes",
    )


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def inspect(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Show the structure of video FILES without decoding them: container, codec, frame size,
    frame count, GOP lengths ("12x20 5": twenty GOPs of 12 frames, then one of 5), B-frames,
    H.264 reference frames (I-frames are decoded to check that the frame size never changes), and whether flatkd can read motion vectors and residuals from it
    (if not, the reason follows the table).

    Exits with status 2 if some file could not be opened at all.
    """
    rows, notes, failed = [], [], 0
    for path in files:
        try:
            info = probe(path)
            info = dataclasses.replace(info, size_change=find_size_change(info))
        except FlatkdError as exc:
            click.echo(f"flatkd: error: {exc}", err=True)
            failed += 1
            continue
        rows.append(_row(path, info))
        problem = info.problem()
        if problem:
            notes.append(f"{path}: {problem}")
    if rows:
        click.echo(format_table(_HEADER, rows))
    for note in notes:
        click.echo(note)
    if failed:
        ctx.exit(EXIT_USER_ERROR)
