"""``flatkd rank-modalities`` as a library call: measure every trained modality network of a run
directory (and of other training runs of the same networks: seeds), rank them and write
``flatness.csv``, ``flatness_summary.csv``, ``chain.json`` and the figures.

For each run, modality (and, with ``exits="all"``, each exit) the network of the given training
stage is loaded (:func:`flatkd.train.load_network`) and measured on ``subsets`` disjoint subsets
of its training clips: ``samples`` clips each, drawn with ``seed``, TSN segments at their centred
(evaluation) positions, so every pass sees the same inputs. Partial and finished results live
under ``flatness/<modality>.exit<k>/subset<j>/`` of the run the network belongs to and are reused
while the settings and the checkpoint (by SHA-256) are unchanged, so an interrupted ranking
resumes. The ranking (:mod:`flatkd.landscape.ranking`) uses each network's final exit, every
subset and every run; ``chain.json`` holds the teacher order PKD will use, measured or the
paper's, and why. ``flatness.csv`` has one row per run, modality, exit and subset (column ``run``:
the run directory's name), ``flatness_summary.csv`` one per modality and metric.

Under torchrun (``env``) every process loads the same networks and subsets and measures its
shard of each subset (every ``world_size``-th clip from its rank on); each HVP, gradient and
surface loss is all-reduced (:mod:`flatkd.landscape.objective`), so every process holds the
numbers one process computes, and rank 0 alone writes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import open_dataset
from flatkd.errors import ConfigError, MissingPrerequisiteError
from flatkd.fileio import atomic_open
from flatkd.landscape.exits import SelectExit
from flatkd.landscape.measure import FlatnessSettings, Measurement, measure_network
from flatkd.landscape.ranking import PRIMARY_METRIC, Ranking, flatness_table, rank_modalities, summary_table
from flatkd.modalities import MODALITIES
from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_surfaces
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.chain import write_chain
from flatkd.runs.data_source import resolve_data_source
from flatkd.runs.diagnostics import NetworkDiagnosis, diagnose_network
from flatkd.runs.figure_data import density_curves, surface_frame
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE
from flatkd.runs.training import load_network, load_train_config
from flatkd.train.distributed import LOCAL, Dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRanking:
    """What :func:`rank_run` measured and wrote, and the ranked networks whose test predictions
    are degenerate (one class for every clip, or accuracy at chance: :mod:`flatkd.runs.diagnostics`)."""

    measurements: list[Measurement]
    ranking: Ranking
    written: list[Path]
    degenerate: list[NetworkDiagnosis]


def training_subsets(
    run: RunDir, modality: str, settings: FlatnessSettings, env: Dist = LOCAL
) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """``settings.subsets`` disjoint seeded subsets of ``modality``'s training clips, each as
    ``(clips, labels)`` batches of ``settings.batch_size``: ``samples`` clips each, or the whole
    training set split evenly when it has fewer than ``subsets * samples`` clips (the records say
    how many clips each subset had). With several processes, this process's shard of each subset
    (clips ``rank, rank + world_size, ...`` of it).

    Raises :class:`ConfigError` when the training set has fewer clips than subsets, or a subset
    fewer clips than processes.
    """
    source = resolve_data_source(run, None)
    config = load_train_config(run, modality)
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    dataset = ClipDataset(
        splits.train, source.cache, (modality,), train=False,
        num_segments=config.num_segments, input_size=config.input_size, seed=config.seed,
    )  # fmt: skip
    size = min(settings.samples, len(dataset) // settings.subsets)
    if size < 1:
        raise ConfigError(
            f"{run.path}: {len(dataset)} training clips cannot give {settings.subsets} disjoint subsets: "
            f"lower landscape.subsets (--subsets {max(1, len(dataset))})"
        )
    if size < env.world_size:
        raise ConfigError(f"{size} clips per subset cannot be shared by {env.world_size} processes: raise landscape.samples")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(settings.seed))
    return [
        _batches(dataset, modality, order[k * size : (k + 1) * size].sort().values[env.rank :: env.world_size], settings)
        for k in range(settings.subsets)
    ]


def _batches(
    dataset: ClipDataset, modality: str, indices: torch.Tensor, settings: FlatnessSettings
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    items = [dataset[int(i)] for i in indices]
    return [
        (
            torch.stack([inputs[modality] for inputs, _ in items[start : start + settings.batch_size]]),
            torch.tensor([label for _, label in items[start : start + settings.batch_size]]),
        )
        for start in range(0, len(items), settings.batch_size)
    ]


def run_labels(runs: Sequence[RunDir]) -> list[str]:
    """The ``run`` column of each run's records: its directory name, made unique with ``#k``."""
    names = [run.path.resolve().name for run in runs]
    return [name if names.count(name) == 1 else f"{name}#{k}" for k, name in enumerate(names)]


def rank_run(
    run_dir: str | os.PathLike[str],
    *,
    seed_runs: Sequence[str | os.PathLike[str]] = (),
    modalities: Sequence[str] = (),
    stage: str | None = None,
    exits: Literal["final", "all"] = "final",
    settings: FlatnessSettings = FlatnessSettings(),
    metric: str = PRIMARY_METRIC,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
) -> RunRanking:
    """Measure, rank and write into ``run_dir`` (module docstring). ``modalities`` defaults to
    every modality with a trained network in the run; at least two are needed. ``seed_runs`` are
    other training runs (seeds) of the same modalities, measured the same way: the ranking's
    intervals then come from the spread over runs. ``env``: the processes of a torchrun launch
    (each calls this; rank 0 writes, every one returns the same ranking; ``written`` is empty
    on the others)."""
    run = RunDir(run_dir)
    stage = stage or FINAL_TRAIN_STAGE
    chosen = list(modalities) or [m for m in MODALITIES if run.checkpoint_path(stage, m).is_file()]
    if len(chosen) < 2:
        raise MissingPrerequisiteError(
            f"{run.path} has {len(chosen)} trained modality network(s) at stage '{stage}'; ranking needs two or more: "
            f"run `flatkd train --run {run.path} --modality MODALITY` for the others"
        )
    runs = [run, *(RunDir(other) for other in seed_runs)]
    for other in runs[1:]:
        missing = [m for m in chosen if not other.checkpoint_path(stage, m).is_file()]
        if missing:
            raise MissingPrerequisiteError(
                f"{other.path} has no '{stage}' network for {', '.join(missing)}: every --seed-run needs the "
                f"modalities ranked ({', '.join(chosen)})"
            )
    degenerate = _degenerate(run, chosen, stage)  # before the measurements: a damaged logits file fails fast
    env.barrier()  # every process has checked the run before rank 0 records the settings
    # the settings are kept once flatness.csv is written: a refused or failed ranking leaves the run as it was
    with run.writing(["rank-modalities"], {("landscape",): [run.flatness_path]}, main=env.is_main):
        measurements, ranking, written = _measure_and_rank(run, runs, chosen, stage, exits, settings, metric, env, progress)
    return RunRanking(measurements, ranking, written, degenerate)


def _measure_and_rank(
    run: RunDir,
    runs: Sequence[RunDir],
    chosen: Sequence[str],
    stage: str,
    exits: Literal["final", "all"],
    settings: FlatnessSettings,
    metric: str,
    env: Dist,
    progress: ProgressFactory,
) -> tuple[list[Measurement], Ranking, list[Path]]:
    """Record the settings, measure every run's networks, rank them and write the results (rank 0;
    the files written are listed there only)."""
    if env.is_main:
        run.set_section(["landscape"], asdict(settings))
    measurements: list[Measurement] = []
    for label, source in zip(run_labels(runs), runs):
        for modality in chosen:
            measurements += _measure(source, label, modality, stage, exits, settings, env, progress)
    finals = [m for m in measurements if m.record.exit == _final_exit(measurements, m.record.modality)]
    ranking = rank_modalities([m.record for m in finals], metric)
    if not env.is_main:
        env.barrier()
        return measurements, ranking, []
    with atomic_open(run.flatness_path, "w", encoding="utf-8", newline="") as handle:
        flatness_table([m.record for m in measurements]).to_csv(handle, index=False)
    with atomic_open(run.flatness_summary_path, "w", encoding="utf-8", newline="") as handle:
        summary_table(ranking).to_csv(handle, index=False)
    write_chain(run, ranking.chain)
    written = [run.flatness_path, run.flatness_summary_path, run.chain_path]
    shown = [m for m in finals if m.record.run == run_labels(runs)[0] and m.record.subset == 0]
    curves, floor = density_curves({m.record.modality: m.density for m in shown})
    written += save_figure(plot_density(curves, floor=floor), run.figures_dir / "eigen_density.png")
    if settings.surfaces:
        lines = surface_frame({m.record.modality: m.line for m in shown if m.line is not None})
        planes = surface_frame({m.record.modality: m.plane for m in shown if m.plane is not None})
        written += save_figure(plot_surfaces(lines, planes), run.figures_dir / "surfaces.png")
    env.barrier()  # the files are complete when any process returns
    return measurements, ranking, written


def _degenerate(run: RunDir, modalities: Sequence[str], stage: str) -> list[NetworkDiagnosis]:
    """The ``modalities`` networks of ``stage`` whose test logits (final exit) show a problem."""
    diagnoses = (diagnose_network(run, m, stage) for m in modalities if run.logits_path(stage, m, "test").is_file())
    return [d for d in diagnoses if d is not None and d.problems]


def _measure(
    run: RunDir,
    label: str,
    modality: str,
    stage: str,
    exits: Literal["final", "all"],
    settings: FlatnessSettings,
    env: Dist,
    progress: ProgressFactory,
) -> list[Measurement]:
    """Every requested exit of ``run``'s ``modality`` network on every subset, labelled ``label``
    (on ``env``'s device, this process's shard of each subset)."""
    checkpoint = run.existing_checkpoint(stage, modality)
    network = load_network(run, modality, stage).to(env.device)
    fingerprint = _sha256(checkpoint)
    indices = range(network.num_exits) if exits == "all" else [network.num_exits - 1]
    measurements = []
    subsets = training_subsets(run, modality, settings, env)
    for subset, data in enumerate(subsets):
        clips = f"{sum(len(labels) for _, labels in data)} clips" + ("" if env.world_size == 1 else " on rank 0")
        for index in indices:
            what = f"flatness {label} {modality} exit {index} subset {subset + 1}/{len(subsets)}"
            with logged_stage(log, what, clips):
                measurement = measure_network(
                    SelectExit(network, index), nn.CrossEntropyLoss(), data, settings, modality=modality, exit=index,
                    subset=subset, store=run.flatness_store(modality, index, subset), fingerprint=fingerprint,
                    env=env, progress=progress,
                )  # fmt: skip
            measurements.append(replace(measurement, record=replace(measurement.record, run=label)))
    return measurements


def _final_exit(measurements: Sequence[Measurement], modality: str) -> int:
    return max(m.record.exit for m in measurements if m.record.modality == modality)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
