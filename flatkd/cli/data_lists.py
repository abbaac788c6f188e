"""``flatkd data lists``: split lists (UCF-101 format) from class folders of videos."""

from __future__ import annotations

from pathlib import Path

import click

from flatkd.data.lists import make_lists
from flatkd.data.splits import SPLITS
from flatkd.naming import UCF_GROUP_PATTERN


@click.command()
@click.argument("raw_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--splits",
    type=click.IntRange(1, len(SPLITS)),
    default=len(SPLITS),
    show_default=True,
    help="Number of train/test splits to write.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="Share of each class's groups every split holds out for testing.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Which groups go to test.")
@click.option(
    "--group",
    default=UCF_GROUP_PATTERN,
    show_default=True,
    metavar="REGEX",
    help="Regular expression finding a clip's source group in its file name (first capture group, "
    "else the whole match).",
)
@click.option("--force", is_flag=True, help="Replace split lists that exist.")
def lists(raw_dir: Path, splits: int, test_fraction: float, seed: int, group: str, force: bool) -> None:
    """Write split lists for RAW_DIR/<Class>/<clip>.<ext> (any container FFmpeg opens: .avi .mp4
    .mpg .mov .mkv .webm ...; or RAW_DIR/videos/<Class>/...): RAW_DIR/splits/classInd.txt,
    trainlist0N.txt and testlist0N.txt
    in UCF-101's format, and lists.json with these settings. Afterwards `flatkd data cache RAW_DIR`
    and `flatkd train --data RAW_DIR` read them.

    Clips cut from one source must stay together (otherwise the test, and the validation set
    carved from training, see the source they learnt from). A clip's group is, first that applies:
    the --group match in its name (default UCF-101's v_<Class>_g<GG>_c<CC>: the gGG), HMDB-51's
    source movie (<movie>_<Class>_...), or the clip alone (a warning says how many). Per class, each
    split holds out a block of --test-fraction of the groups (shuffled by --seed; the blocks of
    splits 1, 2, 3 follow each other), whole groups only.

    \b
    Example:
      flatkd data lists data/mine                       # Class/v_Class_g01_c01.mp4 ...
      flatkd data lists data/mine --splits 1 --group '^(\\w+?)_take\\d+'

    Refused (one line, exit 2): no class folders, a class whose clips are all one group, names
    with white space, one clip under two suffixes, lists that exist (unless --force).
    """
    summary = make_lists(raw_dir, splits=splits, test_fraction=test_fraction, seed=seed, group=group, force=force)
    for warning in summary.warnings:
        click.echo(f"flatkd: warning: {warning}", err=True)
    click.echo(
        f"{summary.splits_dir}: {len(summary.classes)} classes, {summary.clips} clips, {summary.groups} groups"
    )
    for split, (train, test, held) in enumerate(zip(summary.train, summary.test, summary.test_groups, strict=True), 1):
        click.echo(f"  split {split}: train {train} clips, test {test} clips ({held} groups)")
