"""``flatkd distill`` and ``flatkd wise``: distillation methods and WISE on a trained run."""

from __future__ import annotations

import time
from pathlib import Path

import click

from flatkd.cli.common import epoch_scalars, progress, run_log, run_option, settings_options, tensorboard_option
from flatkd.modalities import MODALITIES
from flatkd.progress import no_progress
from flatkd.runs.methods import METHODS, get_method

# the run layer, pandas and torch are imported inside the commands: `--help` imports no torch


@click.command()
@run_option
@click.option(
    "--method",
    type=click.Choice(list(METHODS)),
    required=True,
    help=f"{' | '.join(METHODS)} (see above).",
)
@click.option(
    "--modality",
    "modalities",
    type=click.Choice(MODALITIES),
    multiple=True,
    help="Network whose ICs to train; repeatable  [default: every trained one; genkd: mv, residual].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of the IC stage  [default: as ic-ce].")
@click.option("--genkd-epochs", type=click.IntRange(min=1), default=None, help="Epochs fine-tuning each genkd student.")
@click.option(
    "--phase-starts",
    default=None,
    metavar="E0,E1,..",
    help="IC epochs run before each teacher's phase, one per teacher of the chain, e.g. 0,2,4 (the second"
    " teacher from epoch 3; epochs count from 1)"
    "  [default: the release's fractions: every phase but the last 1/6 of the IC epochs; with fewer"
    " epochs than teachers the first and the last teachers teach an epoch each].",
)
@settings_options("flatkd.runs.distill_settings.DistillConfig")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option(
    "--select",
    type=click.Choice(["network", "per-ic"]),
    default="network",
    show_default=True,
    help="Checkpoint selection on validation: one best epoch for all ICs, or each IC's own best epoch.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted distillation with the settings it recorded.")
@tensorboard_option
def distill(
    run_dir: Path,
    method: str,
    modalities: tuple[str, ...],
    epochs: int | None,
    genkd_epochs: int | None,
    phase_starts: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
    workers: int | None,
    select: str,
    resume: bool,
    tensorboard: bool,
) -> None:
    """Train the internal classifiers (ICs) of each network of a run with a distillation method,
    the backbone frozen, and tabulate the accuracy of every exit.

    \b
    Methods (stage written under RUN/checkpoints and RUN/logits):
      ce            label cross-entropy: the baseline; reuses `flatkd train`'s ic-ce stage
      kd            KD from the network's own final head                     (ic-kd)
      pkd           progressive KD: teachers along RUN/chain.json, sharpest first
                    (`flatkd rank-modalities` writes it: the measured order where every
                    pair is resolved, else the paper's MV -> residual -> I-frame), own
                    head where the chain puts the network itself             (ic-pkd)
      pkd-paper     control: PKD along the papers' MV -> residual -> I-frame,
                    whatever chain.json says                               (ic-pkd-paper)
      pkd-reversed  ablation: the chain reversed                             (ic-pkd-reversed)
      pkd-iframe    ablation: the I-frame network's head only                (ic-pkd-iframe)
      genkd         generative feature KD from the I-frame network fine-tunes the MV
                    and residual backbones (genkd-teacher, genkd), then CE ICs (ic-genkd)
      genkd-ce      control: the same fine-tune budget (epochs, optimiser, batches) with
                    label CE alone, no attention/CVAE/teacher (genkd-ce, ic-genkd-ce)
      genkd-noteacher  control: genkd's attention + CVAE fine-tune with the teacher
                    terms (GD, AD) off (genkd-noteacher, ic-genkd-noteacher)
      pkd+genkd     PKD ICs on the genkd backbones                           (ic-pkd+genkd)

    Each teacher runs on its own modality of the same clips. The IC stage trains like ic-ce
    (same epochs, optimiser and schedule unless changed), so the methods compare like for like.
    Every method draws the same batches in the same order from the same initial ICs (the
    seeds do not depend on the method). --select per-ic keeps each IC at its own best validation
    epoch instead of one epoch for all. Afterwards the logits of every exit on validation and test
    are saved, and RUN/distill.csv (with the epoch and teacher of every IC kept) and
    RUN/distill.md (with paired intervals between methods) are rebuilt from every method in the run.

    Settings: defaults (IC stage as ic-ce), then --config FILE with any of the sections `ics`
    (epochs, optim, schedule), `kd` (temperature, alpha, t2_scaling), `pkd` (phase_starts,
    own_head_flattest), `genkd` (epochs, teacher_epochs, loss, cvae_optim, network_optim,
    schedule), or a run's config.yaml (its `distill.<method>.<modality>`), then the flags, then
    --set KEY=VALUE (e.g. --set kd.temperature=2); saved under `distill.<method>.<modality>` in
    RUN/config.yaml.

    \b
    Examples:
      flatkd distill --run runs/r1 --method pkd
      flatkd distill --run runs/r1 --method pkd --modality mv --epochs 20
      flatkd distill --run runs/r1 --method pkd --resume             # after a kill
      flatkd distill --run runs/r1 --method genkd --genkd-epochs 4
      flatkd distill --run runs/r1 --method genkd-noteacher --genkd-epochs 4   # its control
    """
    import pandas as pd

    from flatkd.runs.distill import distill as run_distill
    from flatkd.runs.distill_settings import parse_phase_starts, resolve_settings
    from flatkd.runs.rundir import RunDir
    from flatkd.runs.tables import accuracy_markdown
    from flatkd.runs.training import load_train_config
    from flatkd.train import init_from_env

    run = RunDir(run_dir)
    chosen = get_method(method)
    if not modalities:
        trained = run.section("train", needs=f"flatkd train --run {run.path} --modality MODALITY")
        modalities = tuple(m for m in MODALITIES if m in trained and chosen.trains(m))
    starts = None if phase_starts is None else parse_phase_starts(phase_starts, chosen)
    flags = {"ics": {"epochs": epochs}, "genkd": {"epochs": genkd_epochs}, "pkd": {"phase_starts": starts}}
    configs = {
        m: resolve_settings(
            run, chosen, m, load_train_config(run, m), resume=resume, config_path=config_path, flags=flags,
            overrides=overrides,
        )
        for m in modalities
    }
    env = init_from_env(load_train_config(run, modalities[0]).device if modalities else "auto")
    env.barrier()  # every process has resolved the settings before rank 0 records them
    started = time.perf_counter()
    bars = progress if env.is_main else no_progress
    with run_log(run.path, env.is_main), epoch_scalars(run.path, tensorboard, env.is_main) as board:
        reports = run_distill(
            run, chosen, configs, select=select, resume=resume, workers=workers, env=env, progress=bars,
            on_epoch_end=board,
        )  # fmt: skip
    if not env.is_main:
        return
    for report in reports:
        click.echo(f"{report.stage:15s} {report.modality:9s} {report.status}")
    click.echo(f"{chosen.name}: {time.perf_counter() - started:.1f} s\n")
    click.echo(accuracy_markdown(pd.read_csv(run.distill_table_path)))
    click.echo(f"wrote {run.distill_table_path} and {run.distill_markdown_path}")


@click.command()
@run_option
@click.option(
    "--method",
    type=click.Choice(list(METHODS)),
    default="pkd",
    show_default=True,
    help="Whose exits: the logits of this distillation method.",
)
@click.option(
    "--order",
    default=None,
    help="Cascade order, comma-separated exits (mv:0) or whole networks (mv)  [default: residual,mv,iframe].",
)
@click.option("--alpha", type=click.FloatRange(min=0), default=None, help="L1 weight  [default: 0.01].")
@click.option("--tau", type=click.FloatRange(0, 1), default=None, help="Confidence threshold reported  [default: 0.999999].")
@click.option("--no-scaling", is_flag=True, help="Ablation: every weight fixed at 1 (plain sum of logits).")
@click.option("--no-lateral", is_flag=True, help="Ablation: each step uses its own exit only.")
@settings_options("flatkd.distill.WiseConfig")
def wise(
    run_dir: Path,
    method: str,
    order: str | None,
    alpha: float | None,
    tau: float | None,
    no_scaling: bool,
    no_lateral: bool,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """WISE: a weighted, scaled ensemble of the early exits of every network, evaluated as an
    early-exit cascade.

    The cascade visits the exits in --order; step k predicts with a non-negative weighted sum of
    the logits of the exits visited so far, its weights fitted on the validation logits (CE + alpha
    * L1, SGD); a clip stops at the first step whose top softmax exceeds tau. On the test split:
    accuracy and mean MACs per clip at --tau, the sweep over tau (0, 1 and tau_points quantiles of
    the validation confidences, so it runs from every clip at the first exit to none early),
    every single exit, and the controls: late fusion of the networks' final heads with equal
    weights, CoViAR's 2:1:1 (I-frame:MV:residual) and weights fitted on validation (simplex grid),
    and the uniform sum of all exits. WISE at --tau is compared with the best single exit and
    each control on the same test clips: paired bootstrap 95% interval and McNemar's p.

    The logits are those of the papers' test protocol where every network has it (`flatkd
    evaluate --segments 25 --crops 10`; the most views per clip wins), else the training-time
    view; --set view=train or view=25x10 chooses. MACs are per clip under that view.

    Writes RUN/wise.json (one entry per variant: method and ablations), RUN/wise.csv (the sweeps),
    RUN/wise_controls.csv (the controls and comparisons), RUN/figures/wise_METHOD.png (accuracy
    vs MACs, single exits and controls as points), the settings under `wise.<variant>` in
    RUN/config.yaml, and the WISE tables of RUN/distill.md.

    Settings: defaults, then --config FILE with the fields of flatkd.distill.WiseConfig (order,
    alpha, lr, iterations, scaling, lateral, tau, tau_points, taus, fusion_resolution, view) or a run's
    config.yaml (its `wise.METHOD`), then the flags, then --set KEY=VALUE.

    \b
    Examples:
      flatkd wise --run runs/r1
      flatkd wise --run runs/r1 --method ce --no-lateral
      flatkd wise --run runs/r1 --order iframe,mv,residual --tau 0.99
    """
    from flatkd.distill.wise import WiseConfig
    from flatkd.runs.rundir import RunDir
    from flatkd.runs.settings import resolve
    from flatkd.runs.wise import wise_for_run

    run = RunDir(run_dir)
    flags = {
        "order": None if order is None else [item.strip() for item in order.split(",") if item.strip()],
        "alpha": alpha,
        "tau": tau,
        "scaling": False if no_scaling else None,
        "lateral": False if no_lateral else None,
    }
    config = resolve(WiseConfig, ("wise", method), config_path=config_path, flags=flags, overrides=overrides)
    with run_log(run.path):
        variant, result, written = wise_for_run(run, get_method(method), config, progress=progress)
    best = result.best_exit()
    view = run.get_section(["wise", variant])["view"]
    click.echo(
        f"WISE {variant} ({view} view): {100 * result.at_tau.accuracy:.1f}% at {result.at_tau.macs / 1e6:.2f} MMACs/clip"
        f" (tau {result.tau:g}); all exits {100 * result.step_accuracy[-1]:.1f}% at"
        f" {result.step_macs[-1] / 1e6:.2f} MMACs; best single exit {result.order[best]}"
        f" {100 * result.exit_accuracy[best]:.1f}% at {result.exit_macs[best] / 1e6:.2f} MMACs"
    )
    for control in result.controls:
        paired = control.versus_wise
        click.echo(
            f"  vs {control.label}: {100 * control.accuracy:.1f}% at {control.macs / 1e6:.2f} MMACs;"
            f" WISE - it {paired.difference.format(scale=100)} points, McNemar p {paired.p_value:.3g}"
        )
    for path in written:
        click.echo(f"wrote {path}")
