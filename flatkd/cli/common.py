"""Pieces shared by the CLI subcommands: the tqdm progress factory and common options."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from tqdm import tqdm

from flatkd.progress import ProgressFactory

#: tqdm on stderr, sized to the terminal, silent when stderr is not a terminal and
#: ``FLATKD_PROGRESS`` is unset (so logs and CI output stay readable).
progress: ProgressFactory = functools.partial(
    tqdm, file=sys.stderr, dynamic_ncols=True, leave=False, disable=None
)

run_option = click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (runs/NAME): holds config, checkpoints, metrics and figures.",
)
