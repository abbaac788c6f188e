"""``flatkd rank-modalities``: measure how flat each modality network's minimum is, rank them and
write the distillation chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flatkd.cli.common import progress, run_log, run_option, settings_options
from flatkd.config import to_dict
from flatkd.landscape.settings import METRICS, PRIMARY_METRIC, FlatnessSettings
from flatkd.modalities import MODALITIES
from flatkd.progress import no_progress

FULL, QUICK = FlatnessSettings(), FlatnessSettings.quick()

#: command-line option -> FlatnessSettings field, for the options whose default depends on --quick
SETTING_OF_OPTION = {
    "samples": "samples", "subsets": "subsets", "batch_size": "batch_size", "seed": "seed", "backend": "backend", "slq_runs": "runs",
    "slq_steps": "steps", "trace_probes": "probes", "tol": "tol", "surfaces": "surfaces",
    "plane_steps": "plane_steps", "line_steps": "line_steps", "radius": "radius",
    "sharpness_steps": "sharpness_steps",
}  # fmt: skip


def _default(field: str) -> str:
    full, quick = getattr(FULL, field), getattr(QUICK, field)
    return f"  [default: {full}{'' if quick == full else f'; with --quick: {quick}'}]"


def flatness_settings(
    quick: bool, config_path: Path | None = None, overrides: tuple[str, ...] = (), **options: Any
) -> FlatnessSettings:
    """The settings of a ``rank-modalities`` call (:func:`flatkd.runs.settings.resolve`): the
    defaults (or :meth:`FlatnessSettings.quick` with ``quick``) < ``--config`` < every option
    that was given (not ``None``) < ``--set``."""
    from flatkd.runs.settings import resolve  # here, not above: `--help` imports no torch

    flags = {SETTING_OF_OPTION[name]: value for name, value in options.items()}
    defaults = to_dict(QUICK if quick else FULL)
    return resolve(FlatnessSettings, ("landscape",), defaults=defaults, config_path=config_path, flags=flags, overrides=overrides)


@click.command("rank-modalities")
@run_option
@click.option("--seed-run", "seed_runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another run directory with the same networks trained with another seed (repeatable): "
                   "measured the same way, so the intervals cover training seeds.")
@click.option("--modality", "modalities", multiple=True, type=click.Choice(MODALITIES),
              help="Networks to rank (repeatable). Default: every modality trained in the run.")
@click.option("--stage", default=None, help="Training stage whose checkpoints are measured (default: ic-ce).")
@click.option("--exits", type=click.Choice(["final", "all"]), default="final", show_default=True,
              help="Measure the final exit only, or every exit (the ranking uses the final one).")
@click.option("--metric", type=click.Choice(list(METRICS)), default=PRIMARY_METRIC, show_default=True,
              help="Primary metric of the ranking; the others are shown beside it.")
@click.option("--quick", is_flag=True,
              help="Cheaper settings for a first look (what `flatkd demo` runs), ~4x faster: 16 clips, one "
                   "Lanczos run of 12 steps + 12 trace probes (same trace precision, density without error "
                   "band), 11-point line, 7x7 plane, 5 sharpness steps. Options given explicitly still apply.")
@click.option("--backend", type=click.Choice(["flatkd", "pyhessian"]), default=None,
              help="Spectrum estimator: flatkd's shared Lanczos, or PyHessian's three separate calls."
                   + _default("backend"))
@click.option("--samples", type=click.IntRange(1), default=None,
              help="Training clips in the fixed subset." + _default("samples"))
@click.option("--subsets", type=click.IntRange(1), default=None,
              help="Disjoint subsets of --samples clips each network is measured on (their spread is the "
                   "interval with one run)." + _default("subsets"))
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Clips per batch; with one batch the double-backward graph is kept (faster HVPs)."
                   + _default("batch_size"))
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seeds the subset and every random vector." + _default("seed"))
@click.option("--slq-runs", type=click.IntRange(1), default=None,
              help="Stochastic Lanczos runs (the first also finds the top eigenvalue); each further run "
                   "costs --slq-steps HVPs and gives the trace one sample." + _default("runs"))
@click.option("--slq-steps", type=click.IntRange(1), default=None,
              help="Lanczos steps per run." + _default("steps"))
@click.option("--trace-probes", type=click.IntRange(0), default=None,
              help="Extra trace probes (one HVP and one trace sample each) besides the runs' start vectors."
                   + _default("probes"))
@click.option("--tol", type=click.FloatRange(0, min_open=True), default=None,
              help="Relative error target of the top eigenvalue." + _default("tol"))
@click.option("--surfaces/--no-surfaces", default=None,
              help="Also compute the 1-D line, the 2-D plane and epsilon-sharpness." + _default("surfaces"))
@click.option("--plane-steps", type=click.IntRange(3), default=None,
              help="Odd grid size of the 2-D plane." + _default("plane_steps"))
@click.option("--line-steps", type=click.IntRange(3), default=None,
              help="Odd number of points on the 1-D line." + _default("line_steps"))
@click.option("--radius", type=click.FloatRange(0, min_open=True), default=None,
              help="Half-width of the surfaces, in filter-normalised units." + _default("radius"))
@click.option("--sharpness-steps", type=click.IntRange(1), default=None,
              help="Ascent steps (one gradient each) of epsilon-sharpness." + _default("sharpness_steps"))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the HVPs run (auto: CUDA when available; under torchrun, each process's local GPU).")
@settings_options("flatkd.landscape.FlatnessSettings")
def rank_modalities(
    run_dir: Path, seed_runs: tuple[Path, ...], modalities: tuple[str, ...], stage: str | None, exits: str, metric: str, quick: bool,
    device: str, config_path: Path | None, overrides: tuple[str, ...], **options: Any,
) -> None:  # fmt: skip
    """Rank the modality networks of a run from the flattest minimum to the sharpest.

    For each trained network, on each of --subsets disjoint subsets of its training clips (eval
    mode): the top eigenvalue and the trace of the Hessian H and of the adaptive Hessian
    |θ| H |θ| (reparametrisation-invariant; shared Lanczos runs + Hutchinson probes), Keskar's
    and the adaptive epsilon-/rho-sharpness, the gradient norm and how much a gradient step would
    still lower the loss; on the first subset the eigenvalue density, a filter-normalised 1-D
    line and 2-D plane with the mean loss increase within radius 0.5.

    The ranking's primary metric (--metric, default the adaptive trace) is compared with 95%
    intervals over --seed-run runs when given, else over the subsets. A pair is resolved only when
    the intervals are disjoint; a network near chance accuracy or not at a minimum is flagged, and
    one whose test predictions are a single class or at chance (the 95% range of max(1/K,
    majority-class rate)) gets a warning line.
    chain.json gets the measured teacher order (sharpest first) only when every pair is resolved
    and every network measurable, else the paper's order MV -> residual -> I-frame, and says why.

    Writes flatness.csv (every measurement), flatness_summary.csv (mean, interval and spreads per
    modality and metric), chain.json, figures/eigen_density.png and figures/surfaces.png. An
    interrupted run resumes from flatness/.

    Cost: about 2x a minute per cpu-tiny network and subset with the defaults on 2 CPU cores (raw +
    adaptive spectrum, 142 surface points on the first subset); --quick about a quarter of that.

    Under torchrun (`torchrun --nproc_per_node N -m flatkd -- rank-modalities ...`) each process
    measures 1/N of every subset and every Hessian-vector product, gradient and surface loss is
    summed over the processes: the same numbers as one process, N times the hardware.

    \b
      flatkd rank-modalities --run runs/r1 --quick
      flatkd rank-modalities --run runs/s0 --seed-run runs/s1 --seed-run runs/s2
      flatkd rank-modalities --run runs/r1 --exits all --backend pyhessian
    """
    from flatkd.runs.ranking import rank_run  # here, not above: `--help` imports no torch
    from flatkd.train import init_from_env

    settings = flatness_settings(quick, config_path, overrides, **options)
    env = init_from_env(device)
    with run_log(run_dir, env.is_main):
        result = rank_run(
            run_dir, seed_runs=seed_runs, modalities=modalities, stage=stage, exits=exits,  # type: ignore[arg-type]
            settings=settings, metric=metric, env=env, progress=progress if env.is_main else no_progress,
        )  # fmt: skip
    if not env.is_main:
        return
    ranking = result.ranking
    click.echo(
        f"{'modality':<9} {'metric':<27} {'mean':>10}  {'95% interval':<22} {'over':<8} {'subset sd':>9}"
        f" {'probe s.e.':>10} {'run sd':>9}"
    )
    for metric_name, by_modality in ranking.summaries.items():
        for modality, summary in by_modality.items():
            interval = summary.interval
            shown = f"[{interval.low:.4g}, {interval.high:.4g}]" if interval else "-"
            click.echo(
                f"{modality:<9} {metric_name:<27} {summary.mean:10.4g}  {shown:<22} {summary.spread_over:<8}"
                f" {summary.subset_sd:9.3g} {summary.probe_stderr:10.3g} {summary.run_sd:9.3g}"
            )
    ordered = " < ".join(f"{m} ({ranking.scores[m]:.4g})" for m in ranking.flattest_first)
    click.echo(f"\nflattest -> sharpest by {ranking.metric}: {ordered}")
    chain = ranking.chain
    click.echo(f"distillation chain (sharpest first): {' -> '.join(chain.order)} [{chain.source}: {chain.reason}]")
    for warning in ranking.warnings:
        click.echo(f"warning: {warning}", err=True)
    for network in result.degenerate:
        click.echo(f"warning: the {network.network} network {'; '.join(network.problems)}", err=True)
    for path in result.written:
        click.echo(f"wrote {path}")
