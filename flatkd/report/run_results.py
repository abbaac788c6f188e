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
from flatkd.runs.figure_data import density_curves, surface_frame, wise_control_frame, wise_frames, wise_variant_label
from flatkd.runs.methods import METHODS
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import accuracy_by_exit, accuracy_rows
from flatkd.runs.wise import read_wise_results, variant_name

_INTEGER_FIELDS = ("exit", "parameters", "hvps", "clips", "subset", "classes")
_TEXT_FIELDS = ("modality", "run")
_OPTIONAL_FIELDS = (
    "accuracy", "mean_loss_increase", "epsilon_sharpness", "adaptive_epsilon_sharpness", "adaptive_rho_sharpness",
)  # fmt: skip
_SUMMARY_COLUMNS = ("modality", "metric", "invariant", "mean", "ci_low", "ci_high", "spread_over", "subset_sd", "run_sd")


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
    """The records of each modality's deepest measured exit (what the ranking compares: every
    subset and run), modalities in canonical order."""
    deepest: dict[str, int] = {}
    for record in records:
        deepest[record.modality] = max(record.exit, deepest.get(record.modality, record.exit))
    chosen = [r for r in records if r.exit == deepest[r.modality]]
    return sorted(chosen, key=lambda r: _modality_order(r.modality))


def flatness_summary(run: RunDir) -> pd.DataFrame:
    """``flatness_summary.csv``: mean, 95% interval and spreads per modality and metric."""
    path = run.flatness_summary_path
    if not path.is_file():
        raise MissingPrerequisiteError(f"{path} is missing: {_rank_command(run)}")
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{path}: not a flatness summary ({exc}); re-run `flatkd rank-modalities`") from None
    missing = [c for c in _SUMMARY_COLUMNS if c not in table]
    if missing:
        raise InputFileError(f"{path}: not a flatness summary (no {', '.join(missing)}); re-run `flatkd rank-modalities`")
    return table


def flatness_curves(run: RunDir) -> FlatnessCurves:
    """Density, line and plane of every modality's final exit on the first data subset, from
    ``flatness/<modality>.exit<k>/subset0/`` of ``run``."""
    densities, lines, planes = {}, {}, {}
    finals = {(r.modality, r.exit) for r in final_exit_records(flatness_records(run))}
    for modality, exit_index in sorted(finals, key=lambda key: _modality_order(key[0])):
        store = run.flatness_store(modality, exit_index, 0)
        if not (store / "density.safetensors").is_file():
            raise MissingPrerequisiteError(f"{store} holds no finished measurement: {_rank_command(run)}")
        densities[modality] = load_density(store / "density.safetensors")
        for name, into in (("line", lines), ("plane", planes)):
            if (store / f"{name}.safetensors").is_file():
                into[modality] = load_surface(store / f"{name}.safetensors")
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


def wise_tradeoff_data(run: RunDir) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`wise_by_method` as the tables of :func:`flatkd.plots.distill.wise_tradeoff_panels`:
    one panel per method (``"PKD exits"``), its WISE variants as the curves, its controls (late
    fusion, uniform sum) as points."""
    curves, exits, controls = [], [], []
    for method, variants in wise_by_method(run).items():
        panel = f"{METHOD_LABELS.get(method, method)} exits"
        curve, exit_points = wise_frames(variants, panel=panel)
        curves.append(curve)
        exits.append(exit_points)
        controls.append(wise_control_frame(variants, panel=panel))
    return (
        pd.concat(curves, ignore_index=True),
        pd.concat(exits, ignore_index=True),
        pd.concat(controls, ignore_index=True),
    )


def _record(row: Mapping[str, object]) -> FlatnessRecord:
    """One ``flatness.csv`` row back to a record: integers as ints, empty optional cells as None."""
    values: dict[str, object] = {}
    for field in fields(FlatnessRecord):
        cell = row[field.name]
        if field.name in _TEXT_FIELDS:
            values[field.name] = "" if pd.isna(cell) else str(cell)
        elif field.name in _INTEGER_FIELDS:
            values[field.name] = int(cell)  # type: ignore[call-overload]
        elif field.name in _OPTIONAL_FIELDS and pd.isna(cell):
            values[field.name] = None
        else:
            values[field.name] = float(cell)  # type: ignore[arg-type]
    return FlatnessRecord(**values)  # type: ignore[arg-type]


def _modality_order(modality: str) -> int:
    return MODALITIES.index(modality) if modality in MODALITIES else len(MODALITIES)

