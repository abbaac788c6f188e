"""``flatkd rank-modalities``: measure how flat each modality network's minimum is, rank them and
write the distillation chain."""

from __future__ import annotations

from pathlib import Path

import click

from flatkd.cli.common import progress, run_option
from flatkd.landscape.measure import FlatnessSettings
from flatkd.landscape.ranking import METRICS, PRIMARY_METRIC
from flatkd.modalities import MODALITIES


@click.command("rank-modalities")
@run_option
@click.option("--modality", "modalities", multiple=True, type=click.Choice(MODALITIES),
              help="Networks to rank (repeatable). Default: every modality trained in the run.")
@click.option("--stage", default=None, help="Training stage whose checkpoints are measured (default: ic-ce).")
@click.option("--exits", type=click.Choice(["final", "all"]), default="final", show_default=True,
              help="Measure the final exit only, or every exit (the ranking uses the final one).")
@click.option("--metric", type=click.Choice(list(METRICS)), default=PRIMARY_METRIC, show_default=True,
              help="Primary metric of the ranking; the others are shown beside it.")
@click.option("--backend", type=click.Choice(["flatkd", "pyhessian"]), default="flatkd", show_default=True,
              help="Spectrum estimator: flatkd's shared Lanczos, or PyHessian's three separate calls.")
@click.option("--samples", type=click.IntRange(1), default=32, show_default=True,
              help="Training clips in the fixed subset.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Clips per batch; with one batch the double-backward graph is kept (faster HVPs).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seeds the subset and every random vector.")
@click.option("--slq-runs", type=click.IntRange(1), default=3, show_default=True,
              help="Stochastic Lanczos runs (the first also finds the top eigenvalue).")
@click.option("--slq-steps", type=click.IntRange(1), default=16, show_default=True,
              help="Lanczos steps per run.")
@click.option("--trace-probes", type=click.IntRange(0), default=5, show_default=True,
              help="Extra trace probes (one HVP each) besides the runs' start vectors.")
@click.option("--tol", type=click.FloatRange(0, min_open=True), default=1e-6, show_default=True,
              help="Relative error target of the top eigenvalue.")
@click.option("--surfaces/--no-surfaces", default=True, show_default=True,
              help="Also compute the 1-D line, the 2-D plane and epsilon-sharpness.")
@click.option("--plane-steps", type=click.IntRange(3), default=11, show_default=True,
              help="Odd grid size of the 2-D plane.")
@click.option("--line-steps", type=click.IntRange(3), default=21, show_default=True,
              help="Odd number of points on the 1-D line.")
@click.option("--radius", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Half-width of the surfaces, in filter-normalised units.")
def rank_modalities(
    run_dir: Path, modalities: tuple[str, ...], stage: str | None, exits: str, metric: str, backend: str,
    samples: int, batch_size: int, seed: int, slq_runs: int, slq_steps: int, trace_probes: int, tol: float,
    surfaces: bool, plane_steps: int, line_steps: int, radius: float,
) -> None:  # fmt: skip
    """Rank the modality networks of a run from the flattest minimum to the sharpest.

    For each trained network: the top Hessian eigenvalue and the trace (shared Lanczos runs; the
    trace with its standard error), the eigenvalue density, a filter-normalised 1-D line and 2-D
    plane of the loss with the mean loss increase within radius 0.5, and epsilon-sharpness, all
    in eval mode on a fixed seeded subset of training clips.

    Writes flatness.csv (all metrics), chain.json (the teacher order PKD uses: sharpest first),
    figures/eigen_density.png and figures/surfaces.png. Warns when neighbours' intervals overlap or
    another metric disagrees. An interrupted run resumes from flatness/.

    \b
      flatkd rank-modalities --run runs/r1
      flatkd rank-modalities --run runs/r1 --exits all --backend pyhessian
    """
    from flatkd.landscape.run_ranking import rank_run

    settings = FlatnessSettings(
        samples=samples, batch_size=batch_size, seed=seed, backend=backend,  # type: ignore[arg-type]
        runs=slq_runs, steps=slq_steps, probes=trace_probes, tol=tol,
        surfaces=surfaces, line_steps=line_steps, plane_steps=plane_steps, radius=radius,
    )  # fmt: skip
    result = rank_run(
        run_dir, modalities=modalities, stage=stage, exits=exits,  # type: ignore[arg-type]
        settings=settings, metric=metric, progress=progress,
    )  # fmt: skip
    header = f"{'modality':<9} {'exit':>4} {'loss':>8} {'top eig.':>18} {'trace (95%)':>20} {'mean dL':>9}"
    click.echo(f"{header} {'eps-sharp':>9}")
    for m in result.measurements:
        r = m.record
        optional = [f"{v:9.4g}" if v is not None else f"{'-':>9}" for v in (r.mean_loss_increase, r.epsilon_sharpness)]
        click.echo(
            f"{r.modality:<9} {r.exit:>4} {r.loss:8.4f} {r.top_eigenvalue:10.4g} +- {r.top_eigenvalue_error:<5.1g}"
            f" {r.trace:10.4g} +- {1.96 * r.trace_stderr:<6.2g} {' '.join(optional)}"
        )
    ranking = result.ranking
    ordered = " < ".join(f"{m} ({ranking.scores[m]:.4g})" for m in ranking.flattest_first)
    click.echo(f"\nflattest -> sharpest by {ranking.metric}: {ordered}")
    click.echo(f"distillation chain (sharpest first): {' -> '.join(ranking.chain)}")
    for warning in ranking.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path in result.written:
        click.echo(f"wrote {path}")
