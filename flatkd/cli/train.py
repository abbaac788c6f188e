"""``flatkd train`` and ``flatkd evaluate``: per-modality multi-exit networks in a run directory."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flatkd.cli.common import epoch_scalars, progress, run_log, run_option, settings_options, tensorboard_option
from flatkd.data.choices import EVAL_CROPS, FRAME_SOURCES
from flatkd.modalities import MODALITIES
from flatkd.models import list_presets
from flatkd.progress import no_progress
from flatkd.runs.stages import FINAL_TRAIN_STAGE, TRAIN_STAGES, Stage

# the run layer and torch are imported inside the commands: `--help` imports no torch
if TYPE_CHECKING:
    from flatkd.data.views import EvalView
    from flatkd.runs.rundir import RunDir
    from flatkd.train import TrainConfig


def _resolve_config(
    run: RunDir,
    modality: str,
    resume: bool,
    config_path: Path | None,
    flags: dict[str, Any],
    overrides: tuple[str, ...],
    allow_changed: bool,
) -> TrainConfig:
    """The settings of ``modality`` (:func:`flatkd.runs.settings.resolve`); on a resume, changes
    to the recorded ones are refused unless allowed (:mod:`flatkd.runs.train_resume`)."""
    from flatkd.runs.settings import recorded_section, resolve
    from flatkd.runs.train_resume import changed_settings
    from flatkd.train import TrainConfig

    section = ("train", modality)
    recorded = recorded_section(run, section, resume=resume, what=f"trains {modality}")
    config = resolve(TrainConfig, section, recorded=recorded, config_path=config_path, flags=flags, overrides=overrides)
    changed = changed_settings(run, modality, recorded, config, allow_changed=allow_changed)
    if changed:
        click.echo(f"flatkd: warning: {modality} resumes with changed settings: {', '.join(changed)}", err=True)
    return config


def _accuracy_table(run: RunDir, stage: str, modality: str, view: str | None = None) -> str:
    from flatkd.train import exit_accuracy

    lines = []
    for split in ("val", "test"):
        logits, labels = run.load_logits(stage, modality, split, view)
        accuracy = " ".join(f"{a:.3f}" for a in exit_accuracy(logits, labels).tolist())
        shown = f"{split}" if view is None else f"{split} {view}"
        lines.append(f"{modality:9s} {stage:9s} {shown:5s} {len(labels):6d}  {accuracy}")
    return "\n".join(lines)


_TABLE_HEADER = "modality  stage     split  clips  accuracy per exit (earliest .. final)"


def _test_view(config: TrainConfig, segments: int | None, crops: int) -> EvalView | None:
    """The requested test view, or None for the training-time one (its segments, centre crop)."""
    from flatkd.data.views import EvalView

    view = EvalView(config.num_segments if segments is None else segments, crops)
    return None if view == EvalView(config.num_segments, 1) else view


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset folder (`flatkd data synth` output or a UCF-101/HMDB-51 tree). Needed on a run's "
    "first train only: the run records it.",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Modality cache built by `flatkd data cache`  [default: DATA/cache].",
)
@click.option(
    "--source",
    "frames",
    type=click.Choice(FRAME_SOURCES),
    default="cache",
    show_default=True,
    help="Read frames from the cache, or (--modality iframe only) decode the I-frames from the videos "
    "with GOP-local seeking, no cache needed.",
)
@click.option("--split", type=click.IntRange(1, 3), default=None, help="Train/test split  [default: 1].")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Share of training clips carved out for validation  [default: 0.15].",
)
@click.option(
    "--modality",
    "modalities",
    type=click.Choice(MODALITIES),
    multiple=True,
    required=True,
    help="Modality to train; repeat for several (trained one after the other).",
)
@run_option
@click.option(
    "--preset",
    type=click.Choice(sorted(list_presets())),
    default=None,
    help="Model preset  [default: cpu-tiny]. `paper`: I-frame ResNet-50, MV/residual ResNet-18. A preset is"
    " the architecture only: epochs, lr, batch and input size stay the CPU-sized defaults unless set;"
    " the paper's recipe is --config configs/ucf101.yaml (or hmdb51.yaml).",
)
@settings_options("flatkd.train.TrainConfig")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of the backbone stage.")
@click.option("--ic-epochs", type=click.IntRange(min=1), default=None, help="Epochs of the IC stage.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch size (clips).")
@click.option("--seed", type=int, default=None, help="Seed: same seed, same numbers.")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Initial backbone weights (ImageNet/Kinetics; safetensors or a plain state dict).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run with the settings it recorded.")
@click.option(
    "--allow-changed",
    is_flag=True,
    help="With --resume: accept changed settings that only stages not started yet use (e.g. --ic-epochs"
    " while the backbone trains); without it any changed setting but workers, eval_batch_size,"
    " channels_last and compile is refused, every difference named.",
)
@tensorboard_option
def train(
    data_dir: Path | None,
    cache: Path | None,
    frames: str,
    split: int | None,
    val_fraction: float | None,
    modalities: tuple[str, ...],
    run_dir: Path,
    preset: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
    epochs: int | None,
    ic_epochs: int | None,
    batch_size: int | None,
    seed: int | None,
    workers: int | None,
    device: str | None,
    weights: Path | None,
    resume: bool,
    allow_changed: bool,
    tensorboard: bool,
) -> None:
    """Train the multi-exit network of each --modality into the run directory.

    Stage `backbone` trains the backbone with cross-entropy on its final exit; stage `ic-ce`
    then trains the internal classifiers (after layer1-3) with the backbone frozen. Each epoch
    writes checkpoints and a row of metrics.csv; the best epoch is chosen on the validation
    split. Afterwards the logits of every exit on validation and test, and the MACs of every exit,
    are saved in the run directory.

    \b
    Examples:
      flatkd train --data data/synth --modality iframe --run runs/r1
      flatkd train --modality mv --modality residual --run runs/r1 --epochs 20
      flatkd train --modality mv --run runs/r1 --resume            # after a kill
      flatkd train --data data/ucf101 --modality iframe --source videos --run runs/r2  # no cache
      torchrun --nproc_per_node 2 -m flatkd -- train --modality mv --run runs/r1

    Under torchrun (the `--` stops torchrun from reading flatkd's options) each process trains
    on its share of every batch with DDP; --batch-size stays the global batch and only rank 0
    writes.

    Settings: defaults, then the run's recorded ones (with --resume), then --config FILE (the
    fields of flatkd.train.TrainConfig, or a run's config.yaml: its `train.<modality>` is used),
    then the flags, then --set KEY=VALUE. A --resume whose settings differ from the recorded
    ones is refused, naming every difference (see --allow-changed); the resolved settings are saved under
    `train.<modality>` in RUN/config.yaml once the first epoch is committed (a refused or failed
    train changes nothing in the run). One train per modality at a time: a second one is refused
    with the PID of the first (a lock left by a killed process is taken over).
    """
    from flatkd.config import to_dict
    from flatkd.runs.data_source import open_split_data, record_data_source, resolve_data_source
    from flatkd.runs.rundir import RunDir
    from flatkd.runs.training import train_network
    from flatkd.train import init_from_env

    run = RunDir(run_dir)
    flags = {
        "preset": preset,
        "seed": seed,
        "batch_size": batch_size,
        "workers": workers,
        "device": device,
        "weights": None if weights is None else str(weights.resolve()),
        "backbone": None if epochs is None else {"epochs": epochs},
        "ics": None if ic_epochs is None else {"epochs": ic_epochs},
    }
    configs = {m: _resolve_config(run, m, resume, config_path, flags, overrides, allow_changed) for m in modalities}
    source = resolve_data_source(run, data_dir, cache, split, val_fraction)
    env = init_from_env(next(iter(configs.values())).device)
    env.barrier()  # every process has read the run's settings before rank 0 writes them
    # the sections are kept only once an epoch is committed: a refused or failed train leaves the
    # run as it found it
    states = {m: [run.resume_path(stage, m) for stage in TRAIN_STAGES] for m in configs}
    sections: dict[tuple[str, ...], list[Path]] = {("train", m): files for m, files in states.items()}
    sections[("data",)] = [path for files in states.values() for path in files]
    with contextlib.ExitStack() as stack:
        stack.enter_context(run.writing([f"train.{m}" for m in configs], sections, main=env.is_main))
        if env.is_main:
            record_data_source(run, source)
            for modality, config in configs.items():
                run.set_section(["train", modality], to_dict(config))
        env.barrier()
        bars = progress if env.is_main else no_progress
        stack.enter_context(run_log(run.path, env.is_main))
        board = stack.enter_context(epoch_scalars(run.path, tensorboard, env.is_main))
        for modality, config in configs.items():
            data = open_split_data(source, config, (modality,), frames)  # type: ignore[arg-type]
            train_network(
                run, modality, config, data, len(source.classes), resume=resume, env=env, progress=bars,
                on_epoch_end=board,
            )  # fmt: skip
    if env.is_main:
        click.echo(_TABLE_HEADER)
        for modality, config in configs.items():
            stage = FINAL_TRAIN_STAGE if config.exits else Stage.BACKBONE
            click.echo(_accuracy_table(run, stage, modality))


@click.command()
@run_option
@click.option(
    "--modality",
    "modalities",
    type=click.Choice(MODALITIES),
    multiple=True,
    help="Modality to evaluate; repeatable  [default: every trained one].",
)
@click.option(
    "--stage",
    default=FINAL_TRAIN_STAGE,
    show_default=True,
    help="Whose checkpoints: backbone, ic-ce, or a distillation stage such as ic-pkd.",
)
@click.option(
    "--segments",
    type=click.IntRange(min=1),
    default=None,
    help="TSN segments per clip, evenly spaced (the papers: 25)  [default: as trained].",
)
@click.option(
    "--crops",
    type=click.Choice([str(c) for c in EVAL_CROPS]),
    default="1",
    show_default=True,
    help="1: centre crop; 10: centre and 4 corners, each also flipped (CoViAR's test).",
)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
def evaluate(
    run_dir: Path, modalities: tuple[str, ...], stage: str, segments: int | None, crops: str, workers: int | None
) -> None:
    """Recompute the logits of every exit on validation and test from the best checkpoints of
    --stage, save them (RUN/logits/STAGE/) with the MACs of every exit (RUN/macs.json), and print
    the accuracy of every exit.

    With --segments/--crops other than the training-time view (its segments, centre crop) this is
    the papers' test protocol (CoViAR: 25 segments x 10 crops, or x 1): the logits are averaged
    over all views of a clip and stored beside the training-time ones, as
    RUN/logits/STAGE/MODALITY.SPLIT.25x10.safetensors; `flatkd wise` and `flatkd report` use them
    where every network has them, and say so. Views are evaluated in chunks of eval_batch_size.

    \b
    Examples:
      flatkd evaluate --run runs/r1
      flatkd evaluate --run runs/r1 --segments 25 --crops 10
      flatkd evaluate --run runs/r1 --stage ic-pkd --segments 25 --crops 1
    """
    from flatkd.runs.data_source import open_split_data, resolve_data_source
    from flatkd.runs.rundir import RunDir
    from flatkd.runs.training import export_logits, load_network, load_train_config, record_macs

    run = RunDir(run_dir)
    if not modalities:
        trained = run.section("train", needs=f"flatkd train --run {run.path} --modality MODALITY")
        modalities = tuple(m for m in MODALITIES if m in trained)
    networks = {m: load_network(run, m, stage) for m in modalities}
    source = resolve_data_source(run, None)
    click.echo(_TABLE_HEADER)
    for modality, network in networks.items():
        config = load_train_config(run, modality)
        if workers is not None:
            config.workers = workers
        view = _test_view(config, segments, int(crops))
        view_config = config if view is None else dataclasses.replace(config, num_segments=view.segments)
        data = open_split_data(source, view_config, (modality,))
        with run_log(run.path):
            export_logits(run, stage, network, data, config, progress=progress, view=view)
        record_macs(run, network, config)
        click.echo(_accuracy_table(run, stage, modality, None if view is None else view.name))
