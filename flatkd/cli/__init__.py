"""The ``flatkd`` command line.

The group is thin: each subcommand lives in its own module under :mod:`flatkd.cli` and is imported
only when used, so ``flatkd --help`` stays quick. Errors the user can fix
(:class:`flatkd.errors.FlatkdError`) end in one line on stderr and exit status 2; ``--debug`` (or
``FLATKD_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from flatkd import __version__
from flatkd.errors import FlatkdError

# name -> "module:attribute" of the click command implementing it
_COMMANDS: dict[str, str] = {}

EXIT_USER_ERROR = 2


class _LazyGroup(click.Group):
    """A click group that imports subcommands on first use and turns user errors into one line."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlatkdError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"flatkd: error: {exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=_LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="flatkd: %(levelname)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="flatkd")
