"""``flatkd rank-modalities`` as a library call: measure every trained modality network of a run
directory, rank them and write ``flatness.csv``, ``chain.json`` and the figures.

For each modality (and, with ``exits="all"``, each exit) the network of the given training stage
is loaded from the run (:func:`flatkd.train.load_network`) and measured on a fixed subset of its
training clips: ``samples`` clips drawn with ``seed``, TSN segments at their centred (evaluation)
positions, so every pass sees the same inputs. Partial and finished results live under
``flatness/<modality>.exit<k>/`` and are reused while the settings and the checkpoint (by SHA-256)
are unchanged, so an interrupted ranking resumes. The ranking uses each network's final exit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import open_dataset
from flatkd.errors import MissingPrerequisiteError
from flatkd.fileio import atomic_open
from flatkd.landscape.exits import SelectExit
from flatkd.landscape.measure import FlatnessSettings, Measurement, measure_network
from flatkd.landscape.ranking import PRIMARY_METRIC, Ranking, flatness_table, rank_modalities
from flatkd.modalities import MODALITIES
from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_surfaces
from flatkd.progress import ProgressFactory, no_progress
from flatkd.runs.chain import write_chain
from flatkd.runs.data_source import resolve_data_source
from flatkd.runs.figure_data import density_curves, surface_frame
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE
from flatkd.runs.training import load_network, load_train_config


@dataclass(frozen=True)
class RunRanking:
    """What :func:`rank_run` measured and wrote."""

    measurements: list[Measurement]
    ranking: Ranking
    written: list[Path]


def training_subset(run: RunDir, modality: str, settings: FlatnessSettings) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed seeded subset of ``modality``'s training clips, as ``(clips, labels)`` batches."""
    source = resolve_data_source(run, None)
    config = load_train_config(run, modality)
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    dataset = ClipDataset(
        splits.train, source.cache, (modality,), train=False,
        num_segments=config.num_segments, input_size=config.input_size, seed=config.seed,
    )  # fmt: skip
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(settings.seed))[: settings.samples]
    items = [dataset[int(i)] for i in chosen.sort().values]
    return [
        (
            torch.stack([inputs[modality] for inputs, _ in items[start : start + settings.batch_size]]),
            torch.tensor([label for _, label in items[start : start + settings.batch_size]]),
        )
        for start in range(0, len(items), settings.batch_size)
    ]


def rank_run(
    run_dir: str | os.PathLike[str],
    *,
    modalities: Sequence[str] = (),
    stage: str | None = None,
    exits: Literal["final", "all"] = "final",
    settings: FlatnessSettings = FlatnessSettings(),
    metric: str = PRIMARY_METRIC,
    progress: ProgressFactory = no_progress,
) -> RunRanking:
    """Measure, rank and write (module docstring). ``modalities`` defaults to every modality with
    a trained network in the run; at least two are needed."""
    run = RunDir(run_dir)
    stage = stage or FINAL_TRAIN_STAGE
    chosen = list(modalities) or [m for m in MODALITIES if run.checkpoint_path(stage, m).is_file()]
    if len(chosen) < 2:
        raise MissingPrerequisiteError(
            f"{run.path} has {len(chosen)} trained modality network(s) at stage '{stage}'; ranking needs two or more: "
            f"run `flatkd train --run {run.path} --modality MODALITY` for the others"
        )
    run.set_section(["landscape"], asdict(settings))
    measurements: list[Measurement] = []
    finals: list[Measurement] = []
    for modality in chosen:
        checkpoint = run.existing_checkpoint(stage, modality)
        network = load_network(run, modality, stage)
        data = training_subset(run, modality, settings)
        indices = range(network.num_exits) if exits == "all" else [network.num_exits - 1]
        for index in indices:
            measurement = measure_network(
                SelectExit(network, index), nn.CrossEntropyLoss(), data, settings,
                modality=modality, exit=index, store=run.flatness_store(modality, index),
                fingerprint=_sha256(checkpoint), progress=progress,
            )  # fmt: skip
            measurements.append(measurement)
        finals.append(measurements[-1])
    ranking = rank_modalities([m.record for m in finals], metric)
    with atomic_open(run.flatness_path, "w", encoding="utf-8", newline="") as handle:
        flatness_table([m.record for m in measurements]).to_csv(handle, index=False)
    write_chain(run, ranking.chain)
    written = [run.flatness_path, run.chain_path]
    curves, floor = density_curves({m.record.modality: m.density for m in finals})
    written += save_figure(plot_density(curves, floor=floor), run.figures_dir / "eigen_density.png")
    if settings.surfaces:
        lines = surface_frame({m.record.modality: m.line for m in finals if m.line is not None})
        planes = surface_frame({m.record.modality: m.plane for m in finals if m.plane is not None})
        written += save_figure(plot_surfaces(lines, planes), run.figures_dir / "surfaces.png")
    return RunRanking(measurements, ranking, written)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
