"""The ``flatkd`` command line.

The group is thin: each subcommand lives in its own module under :mod:`flatkd.cli` and is imported
only when used, so ``flatkd --help`` stays quick. Errors the user can fix
(:class:`flatkd.errors.FlatkdError`) end in one line on stderr and exit status 2; ``--debug`` (or
``FLATKD_DEBUG=1``) shows the traceback instead. Ctrl-C ends in one line and exit status 130.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from flatkd import __version__
from flatkd.cli.common import LazyGroup

# name -> "module:attribute" of the click command implementing it
_COMMANDS: dict[str, str] = {
    "train": "flatkd.cli.train:train",
    "evaluate": "flatkd.cli.train:evaluate",
    "data": "flatkd.cli.data:data",
    "rank-modalities": "flatkd.cli.landscape:rank_modalities",
    "distill": "flatkd.cli.distill:distill",
    "wise": "flatkd.cli.distill:wise",
    "demo": "flatkd.cli.demo:demo",
    "report": "flatkd.cli.report:report",
}


@click.group(cls=LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flatkd")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--debug",
    is_flag=True,
    envvar="FLATKD_DEBUG",
    help="Show full tracebacks for user errors instead of one line.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """flatkd: flatness analysis and knowledge distillation for compressed-video action
    recognition.

    Compressed videos already carry three cheap modalities: I-frames, motion vectors and
    residuals. flatkd reads them with PyAV, trains one network with early exits per modality,
    measures how flat each network's minimum is, orders the distillation chain from sharpest to
    flattest, and distils along it (PKD, WISE, generative feature KD).

    A typical session, all results under one run directory:

    \b
      flatkd data synth --out data/synth          # or: data transcode your videos
      flatkd data cache data/synth
      flatkd train --data data/synth --modality iframe --run runs/r1   # and mv, residual
      flatkd rank-modalities --run runs/r1
      flatkd distill --run runs/r1 --method pkd
      flatkd wise --run runs/r1
      flatkd report --run runs/r1

    `flatkd demo` runs all of it on a small synthetic dataset. `flatkd COMMAND --help` explains
    each command.

    Exit status: 0 success; 2 an error you can fix, as one line `flatkd: error: ...` on stderr
    naming the file and what to do (bad options or files, a full disk, a read-only folder, an
    FFmpeg error); 3 finished, but some inputs failed (`data cache`, `data transcode`: each
    failure named on stderr); 130 interrupted by Ctrl-C (one line `flatkd: interrupted: ...`
    saying what the run keeps and how to continue); anything else is a bug (with --debug, every
    error shows its traceback).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    # in a batch job (stderr not a terminal: nohup, SLURM) the per-epoch and stage lines are shown
    # without -v, since there are no progress bars there
    batch = verbose == 0 and not sys.stderr.isatty()
    level = logging.INFO if batch else logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="flatkd: %(levelname)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Console-script entry point. Figures are written to files, never shown: matplotlib's
    non-interactive Agg backend, unless ``MPLBACKEND`` chooses another."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    # SIGTERM ends the command like Ctrl-C would: cleanups run (worker pools stop, temp files go)
    signal.signal(signal.SIGTERM, _terminated)
    cli(prog_name="flatkd")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
