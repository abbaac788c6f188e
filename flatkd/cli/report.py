"""``flatkd report``: the markdown report of a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from flatkd.cli.common import run_option
from flatkd.report import write_report


@click.command()
@run_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the report  [default: RUN/report.md].",
)
def report(run_dir: Path, out: Path | None) -> None:
    """Write a self-contained markdown report of a run: its tables, and its figures as links.

    \b
    Sections, from what the run directory holds:
      Data          dataset, split, classes, clips per split
      Training      settings, epochs and time per modality; validation/test
                    accuracy and MACs of every exit (stage ic-ce)
      Flatness      trace, top eigenvalue, surface metrics per network
                    (flatness.csv), the chain PKD follows and the ranking's
                    warnings (chain.json), eigen-density and loss surfaces
      Distillation  test accuracy of every exit per method (distill.csv),
                    each method's gain over CE
      WISE          accuracy and MACs of every variant against the best
                    single exit (wise.json), the trade-off figures

    A section whose input is missing names the command that makes it; a run
    without any trained network is an error. Figures are linked relative to
    the report, from RUN/figures/.

    \b
    Examples:
      flatkd report --run runs/demo
      flatkd report --run runs/demo --out paper/demo-report.md
    """
    click.echo(f"wrote {write_report(run_dir, out)}")
