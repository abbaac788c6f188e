"""``flatkd report``: the markdown report of a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from flatkd.cli.common import run_option


@click.command()
@run_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the report  [default: RUN/report.md].",
)
@click.option(
    "--seed-run",
    "seed_runs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another run of the same recipe with another training seed (repeatable): adds every method "
    "comparison across the runs (mean difference, 95% interval over runs).",
)
def report(run_dir: Path, out: Path | None, seed_runs: tuple[Path, ...]) -> None:
    """Write a self-contained markdown report of a run: its tables, and its figures as links.

    \b
    Sections, from what the run directory holds:
      Data          dataset, split, classes, clips per split
      Training      settings, epochs and time per modality; validation/test
                    accuracy and MACs of every exit (stage ic-ce)
      Networks by class
                    per network (final exit, test): the epoch each stage
                    kept of those it ran, n, chance (1/K and the majority
                    class), per-class accuracy, a confusion matrix
                    (RUN/figures/confusion_MODALITY.png) and a warning when
                    it predicts one class for every clip or is at chance
      Flatness      adaptive and raw trace, top eigenvalue and sharpness per
                    network with 95% intervals (flatness_summary.csv), whether
                    each is converged enough to rank, the chain PKD follows
                    and why (chain.json), eigen-density and loss surfaces
      Distillation  test accuracy of every exit per method (distill.csv),
                    paired comparisons with 95% intervals and McNemar p
      WISE          accuracy and MACs of every variant against the best
                    single exit and the late-fusion / uniform-sum controls
                    (wise.json), the trade-off figures
      Across seeds  with --seed-run: every method comparison over the runs

    A section whose input is missing names the command that makes it; a run
    without any trained network is an error. Figures are linked relative to
    the report, from RUN/figures/.

    \b
    Examples:
      flatkd report --run runs/demo
      flatkd report --run runs/demo --out paper/demo-report.md
      flatkd report --run runs/s0 --seed-run runs/s1 --seed-run runs/s2
    """
    from flatkd.report import write_report  # here, not above: `flatkd report --help` imports no torch

    click.echo(f"wrote {write_report(run_dir, out, seed_runs)}")
