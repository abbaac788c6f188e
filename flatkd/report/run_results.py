"""Results of a run directory as the data the figures take (:mod:`flatkd.plots`): what the report
and the ``analyses/`` notebooks read.

Each reader raises :class:`flatkd.errors.MissingPrerequisiteError` naming the command that writes
the missing input, and :class:`flatkd.errors.InputFileError` for a file it cannot parse.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, fields

import pandas as pd

from flatkd.distill.wise import WiseConfig, WiseResult
from flatkd.errors import InputFileError, MissingPrerequisiteError
from flatkd.landscape import FlatnessRecord, load_density, load_surface
from flatkd.modalities import MODALITIES
from flatkd.plots.distill import METHOD_LABELS
from flatkd.runs.figure_data import density_curves, surface_frame, wise_frames, wise_variant_label
from flatkd.runs.methods import METHODS
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import accuracy_by_exit, accuracy_rows
from flatkd.runs.wise import read_wise_results, variant_name

_INTEGER_FIELDS = ("exit", "parameters", "hvps")
_OPTIONAL_FIELDS = ("accuracy", "mean_loss_increase", "epsilon_sharpness")


@dataclass(frozen=True)
class FlatnessCurves:
    """The stored curves of each modality's final exit as the tables of
    :mod:`flatkd.plots.landscape`: eigenvalue ``density`` (and its ``density_floor``), 1-D
    ``lines``, 2-D ``planes`` (:mod:`flatkd.runs.figure_data`; the surfaces are empty when
    ``flatkd rank-modalities`` skipped them)."""

    density: pd.DataFrame
    density_floor: float
    lines: pd.DataFrame
    planes: pd.DataFrame


def _rank_command(run: RunDir) -> str:
    return f"run `flatkd rank-modalities --run {run.path}` first"


def flatness_records(run: RunDir) -> list[FlatnessRecord]:
    """The rows of ``flatness.csv`` (one per measured network exit), in the file's order."""
    if not run.flatness_path.is_file():
        raise MissingPrerequisiteError(f"{run.flatness_path} is missing: {_rank_command(run)}")
    try:
        return [_record(row) for row in pd.read_csv(run.flatness_path).to_dict("records")]
    except (KeyError, TypeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{run.flatness_path}: not a flatness table ({exc}); re-run `flatkd rank-modalities`") from None


def final_exit_records(records: list[FlatnessRecord]) -> list[FlatnessRecord]:
    """One record per modality, its deepest measured exit (what the ranking compares)."""
    deepest = {}
    for record in records:
        if record.modality not in deepest or record.exit > deepest[record.modality].exit:
            deepest[record.modality] = record
    return [deepest[m] for m in sorted(deepest, key=_modality_order)]


def flatness_curves(run: RunDir) -> FlatnessCurves:
    """Density, line and plane of every modality's final exit from ``flatness/<modality>.exit<k>/``."""
    densities, lines, planes = {}, {}, {}
    for record in final_exit_records(flatness_records(run)):
        store = run.flatness_store(record.modality, record.exit)
        if not (store / "density.safetensors").is_file():
            raise MissingPrerequisiteError(f"{store} holds no finished measurement: {_rank_command(run)}")
        densities[record.modality] = load_density(store / "density.safetensors")
        for name, into in (("line", lines), ("plane", planes)):
            if (store / f"{name}.safetensors").is_file():
                into[record.modality] = load_surface(store / f"{name}.safetensors")
    density, floor = density_curves(densities)
    return FlatnessCurves(density, floor, surface_frame(lines), surface_frame(planes))


def accuracy_by_method(run: RunDir, split: str = "test") -> dict[str, dict[str, list[float]]]:
    """Accuracy (%) of every exit: ``[method][modality][exit]`` for every method with ``split``
    logits in the run (``ce`` is the ``flatkd train`` baseline), in the order of
    :data:`flatkd.runs.methods.METHODS` and the canonical modality order."""
    accuracy = accuracy_by_exit(accuracy_rows(run), split)
    if not accuracy:
        raise MissingPrerequisiteError(f"{run.path} has no {split} logits: run `flatkd train --run {run.path}` first")
    return accuracy


def wise_by_method(run: RunDir) -> dict[str, dict[str, WiseResult]]:
    """The WISE variants of ``wise.json`` grouped by distillation method: ``[method][legend
    label]`` (``"WISE"``, ``"WISE (no scaling)"``, ...), methods in :data:`METHODS` order."""
    results = read_wise_results(run)
    if not results:
        raise MissingPrerequisiteError(f"{run.wise_path} is missing: run `flatkd wise --run {run.path}` first")
    grouped: dict[str, dict[str, WiseResult]] = {}
    for method, scaling, lateral in itertools.product(METHODS.values(), (True, False), (True, False)):
        tag = variant_name(method, WiseConfig(scaling=scaling, lateral=lateral))
        if tag in results:
            grouped.setdefault(method.name, {})[wise_variant_label(results[tag])] = results[tag]
    return grouped


def wise_tradeoff_data(run: RunDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`wise_by_method` as the tables of :func:`flatkd.plots.distill.wise_tradeoff_panels`:
    one panel per method (``"PKD exits"``), its WISE variants as the curves."""
    frames = [
        wise_frames(variants, panel=f"{METHOD_LABELS.get(method, method)} exits")
        for method, variants in wise_by_method(run).items()
    ]
    return pd.concat([c for c, _ in frames], ignore_index=True), pd.concat([e for _, e in frames], ignore_index=True)


def _record(row: Mapping[str, object]) -> FlatnessRecord:
    """One ``flatness.csv`` row back to a record: integers as ints, empty optional cells as None."""
    values: dict[str, object] = {}
    for field in fields(FlatnessRecord):
        cell = row[field.name]
        if field.name == "modality":
            values[field.name] = str(cell)
        elif field.name in _INTEGER_FIELDS:
            values[field.name] = int(cell)  # type: ignore[call-overload]
        elif field.name in _OPTIONAL_FIELDS and pd.isna(cell):
            values[field.name] = None
        else:
            values[field.name] = float(cell)  # type: ignore[arg-type]
    return FlatnessRecord(**values)  # type: ignore[arg-type]


def _modality_order(modality: str) -> int:
    return MODALITIES.index(modality) if modality in MODALITIES else len(MODALITIES)

