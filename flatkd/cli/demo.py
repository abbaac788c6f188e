"""``flatkd demo``: the whole pipeline on the built-in synthetic dataset, in one resumable command."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flatkd.cli.data_cache import cache
from flatkd.cli.data_synth import synth
from flatkd.cli.distill import distill, wise
from flatkd.cli.landscape import rank_modalities
from flatkd.cli.report import report
from flatkd.cli.train import train
from flatkd.data.synth.design import DESIGNS
from flatkd.fileio import atomic_open
from flatkd.landscape.chain import PAPER_CHAIN
from flatkd.modalities import MODALITIES
from flatkd.models import list_presets
from flatkd.runs.stages import FINAL_TRAIN_STAGE

# the run layer, pandas and torch are imported inside the functions: `--help` imports no torch
if TYPE_CHECKING:
    from flatkd.runs.rundir import RunDir


#: Per-modality settings of the demo's networks (before --set): motion vectors and residuals train
#: at a higher learning rate than I-frames, as in CoViAR's and the PKD release's recipes (CoViAR:
#: Adam, I-frame 3e-4, MV 1e-2, residual 5e-3 from ImageNet weights; here from scratch, scaled
#: to flatkd's default 2e-3; residual 6e-3 was tried on data seed 0 and was worse than 4e-3).
DEMO_RECIPE: dict[str, tuple[str, ...]] = {
    "iframe": (),
    "mv": ("backbone.optim.lr=0.005",),
    "residual": ("backbone.optim.lr=0.004",),
}


def _cpu_loader(device: str) -> tuple[str, ...]:
    """``workers=0`` where the networks train on the CPU: a loader process competes with torch's
    threads for the same cores (on 2 cores a demo epoch took 3.6 s with one worker and 2.9 s with
    none). It changes no number: each sample's augmentation has its own generator
    (:mod:`flatkd.data.clip_dataset`)."""
    import torch

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return ("workers=0",) if on_cpu else ()


def _trained(run: RunDir) -> bool:
    """Every modality's network finished its IC stage (so `flatkd train` has nothing left to do)."""
    from flatkd.runs.ic_training import epochs_finished
    from flatkd.runs.training import load_train_config

    trained = run.read_config().get("train", {})
    return all(
        m in trained and epochs_finished(run, FINAL_TRAIN_STAGE, m, load_train_config(run, m).ics.epochs)
        for m in MODALITIES
    )


def _distill(ctx: click.Context, run: RunDir, method: str, **options: Any) -> None:
    """``flatkd distill --method METHOD --resume``; ``pkd-paper`` only where it differs from ``pkd``
    (the chain is measured and not the papers' order)."""
    from flatkd.runs.chain import read_chain

    if method == "pkd-paper" and read_chain(run).order == PAPER_CHAIN:
        click.echo("the chain is the papers' order: pkd-paper would repeat pkd, skipped")
        return
    ctx.invoke(distill, run_dir=run.path, method=method, resume=True, **options)


@click.command()
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Run directory of the demo.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Where the synthetic dataset and its cache go.",
)
@click.option("--classes", type=click.IntRange(4, 10), default=10, show_default=True, help="Synthetic classes (even).")
@click.option(
    "--design",
    type=click.Choice(list(DESIGNS)),
    default="families",
    show_default=True,
    help="Class design of the synthetic set (`flatkd data synth --help`).",
)
@click.option("--clips-per-class", type=click.IntRange(min=2), default=120, show_default=True)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Share of each class's clip groups held out for testing (60 clips a class: paired intervals of"
    " about +-4 points).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of the training clips carved out for validation (12 clips a class).",
)
@click.option("--frames", type=click.IntRange(min=12), default=24, show_default=True, help="Frames per clip (GOP of 12).")
@click.option("--size", type=click.IntRange(min=32), default=96, show_default=True, help="Frame size in pixels (square).")
@click.option(
    "--preset",
    type=click.Choice(sorted(list_presets())),
    default="cpu-tiny",
    show_default=True,
    help="Model preset of the three networks (`paper` on GPUs).",
)
@click.option(
    "--input-size", type=click.IntRange(min=32), default=80, show_default=True, help="Network input size (crops)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Training batch (clips).")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True, help="Epochs of the backbone stage.")
@click.option(
    "--ic-epochs",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Epochs of every IC stage (CE, KD and PKD).",
)
@click.option(
    "--genkd-epochs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Epochs fine-tuning each generative-KD student (and each of its two controls).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other training setting, as for `flatkd train --set`. Repeatable.",
)
@click.option("--data-seed", type=int, default=0, show_default=True, help="Seed of the synthetic dataset.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of training.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Processes for synth and cache  [default: all CPUs].")
@click.pass_context
def demo(
    ctx: click.Context,
    run_dir: Path,
    data_dir: Path,
    classes: int,
    design: str,
    clips_per_class: int,
    test_fraction: float,
    val_fraction: float,
    frames: int,
    size: int,
    preset: str,
    input_size: int,
    batch_size: int,
    epochs: int,
    ic_epochs: int,
    genkd_epochs: int,
    overrides: tuple[str, ...],
    data_seed: int,
    seed: int,
    device: str,
    jobs: int | None,
) -> None:
    """Run flatkd end to end on a synthetic dataset: the README's main command.

    \b
    Steps (each the `flatkd` command of the same name):
      1. data synth       encode a seeded synthetic action dataset (MPEG-4 Part 2)
      2. data cache       decode it once into I-frames, motion vectors and residuals
      3. train            one multi-exit network per modality (backbone, then CE ICs)
      4. rank-modalities  Hessian spectrum and loss surfaces of each network (--quick) -> chain.json
      5. distill ce       the CE baseline (the ICs `flatkd train` trained)
      6. distill kd       the ICs distilled from the network's own final head
      7. distill pkd      progressive KD along the chain (the measured one where resolved,
                          else the papers' order); then pkd-paper when the chain differs
                          from the papers' order, and pkd-reversed
      8. wise             weighted ensemble of all exits, accuracy vs MACs, beside late fusion
      9. distill genkd    generative feature KD, then its two controls (genkd-ce, genkd-noteacher)
     10. report           RUN/report.md with the tables (paired 95% intervals) and figures

    Running it again continues what is unfinished and keeps what is done (use the same options,
    or another --run/--data). The defaults (1200 clips of 24 frames at 96 px; a class has 48
    training, 12 validation and 60 test clips) take about 8 minutes on 2 CPU cores (455 s
    measured); the sizes are options, e.g. more training clips (150 a class with --test-fraction
    0.4 --val-fraction 0.15 gave MV 53% and residual 72% on data seed 0, in 14 minutes with a
    loader process), or on a GPU:

    \b
      flatkd demo --run runs/demo-gpu --data data/demo-gpu --clips-per-class 150 \\
          --frames 48 --size 128 --input-size 112 --epochs 30 --ic-epochs 15 --device cuda

    flatkd 0.1's demo (factorial design):  --design factorial --clips-per-class 30 --test-fraction 0.3
    --val-fraction 0.15 --frames 48 --size 128 --input-size 112. Each step's time goes to
    RUN/demo_steps.csv.
    """
    import pandas as pd

    from flatkd.runs.rundir import RunDir

    run = RunDir(run_dir)
    steps: list[tuple[str, Callable[[], Any]]] = [
        (
            "data synth",
            lambda: ctx.invoke(
                synth, out=data_dir, classes=classes, design=design, clips_per_class=clips_per_class,
                test_fraction=test_fraction, frames=frames, size=str(size), seed=data_seed, jobs=jobs,
            ),
        ),  # fmt: skip
        ("data cache", lambda: ctx.invoke(cache, dataset_dir=data_dir, size=size, jobs=jobs)),
        (
            "train",
            lambda: None
            if _trained(run)
            else [
                ctx.invoke(
                    train, data_dir=data_dir, val_fraction=val_fraction, modalities=(modality,), run_dir=run_dir,
                    preset=preset, epochs=epochs, ic_epochs=ic_epochs, batch_size=batch_size, seed=seed,
                    device=device, resume=True,
                    overrides=(f"input_size={input_size}", *_cpu_loader(device), *DEMO_RECIPE[modality], *overrides),
                )
                for modality in MODALITIES
            ],
        ),  # fmt: skip
        ("rank-modalities", lambda: ctx.invoke(rank_modalities, run_dir=run_dir, quick=True)),
        *[
            (f"distill {method}", partial(_distill, ctx, run, method))
            for method in ("ce", "kd", "pkd", "pkd-paper", "pkd-reversed")
        ],
        ("wise", lambda: ctx.invoke(wise, run_dir=run_dir, method="pkd")),
        *[
            (f"distill {method}", partial(_distill, ctx, run, method, genkd_epochs=genkd_epochs))
            for method in ("genkd", "genkd-ce", "genkd-noteacher")
        ],
        ("report", lambda: ctx.invoke(report, run_dir=run_dir)),
    ]
    timings = []
    started = time.perf_counter()
    for index, (name, step) in enumerate(steps, start=1):
        click.secho(f"\n[{index}/{len(steps)}] flatkd {name}", bold=True)
        begun = time.perf_counter()
        step()
        timings.append({"step": name, "seconds": round(time.perf_counter() - begun, 1)})
    total = time.perf_counter() - started
    timings.append({"step": "total", "seconds": round(total, 1)})
    with atomic_open(run.demo_steps_path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(timings).to_csv(handle, index=False)
    click.echo("\n" + "  ".join(f"{t['step']} {t['seconds']:.0f} s" for t in timings))
    click.echo(f"demo finished in {total / 60:.1f} min: see {run.report_path}")
