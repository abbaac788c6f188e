"""``flatkd wise`` as a library call: WISE on one distillation method's logits in a run directory.

The weights are fitted on the method's validation logits of every trained modality and evaluated
on its test logits (:func:`flatkd.distill.wise.run_wise`), with the exit costs of ``macs.json``.
Results are kept per *variant* (the method plus the ablations, e.g. ``pkd``, ``pkd-no-scaling``,
``ce-no-lateral``):

- ``wise.json``: variant -> result (order, weights, operating point, tau sweep, references);
- ``wise.csv``: the tau sweep of every variant (``variant, method, scaling, lateral, tau,
  accuracy, macs, chosen, exit_fractions``), rebuilt from ``wise.json``;
- ``wise_controls.csv``: every variant's controls (best single exit, late fusion of the final
  heads with equal / CoViAR / fitted weights, uniform sum of all exits): ``variant, method,
  control, label, exits, weights, accuracy, macs, wise_tau, wise_accuracy, wise_macs, n,
  difference, ci_low, ci_high, wise_only, control_only, mcnemar_p`` (accuracies and the paired
  difference WISE - control with its bootstrap 95% interval in points), rebuilt from ``wise.json``;
- ``figures/wise_<method>.png``: accuracy against mean MACs per clip, one curve per variant of the
  method, every single exit and every control as a point;
- ``config.yaml``: the resolved settings under ``wise.<variant>``;
- ``distill.md``: rebuilt with the WISE lines (:mod:`flatkd.runs.tables`).

The logits are those of the test protocol every network has (``flatkd evaluate --segments 25
--crops 10``: :func:`logits_view`), else the training-time view, or the ``view`` setting; the
view is recorded in ``config.yaml`` and the MACs per clip are scaled to its network passes.

Running a variant again replaces that variant's entry (the inputs are the same files; the
settings used are in ``config.yaml``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from flatkd.config import to_dict
from flatkd.data.views import EvalView
from flatkd.distill.wise import WiseConfig, WiseResult, load_wise, run_wise, save_wise
from flatkd.errors import ConfigError, InputFileError, MissingPrerequisiteError
from flatkd.fileio import atomic_open
from flatkd.modalities import MODALITIES
from flatkd.plots import save_figure
from flatkd.plots.distill import wise_tradeoff_figure
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.figure_data import wise_control_frame, wise_frames, wise_variant_label
from flatkd.runs.methods import Method
from flatkd.runs.rundir import RunDir
from flatkd.runs.tables import write_tables
from flatkd.runs.training import load_train_config

log = logging.getLogger(__name__)


def variant_name(method: Method, config: WiseConfig) -> str:
    """``pkd``, ``pkd-no-scaling``, ``pkd-no-lateral``, ``pkd-no-scaling-no-lateral``."""
    return method.name + ("" if config.scaling else "-no-scaling") + ("" if config.lateral else "-no-lateral")


def expand_order(items: Sequence[str], exits: Mapping[str, int]) -> tuple[str, ...]:
    """Cascade order from ``modality:index`` exit names and bare modality names (all of that
    network's exits, earliest first), e.g. ``["residual", "mv:3", "iframe"]``."""
    order: list[str] = []
    for item in items:
        if ":" in item:
            modality, _, index = item.partition(":")
            if modality not in exits or not index.isdigit() or int(index) >= exits[modality]:
                known = ", ".join(f"{m}:0..{n - 1}" for m, n in exits.items())
                raise ConfigError(f"wise order: {item!r} is not an exit of a trained network ({known})")
            order.append(f"{modality}:{int(index)}")
        elif item in exits:
            order += [f"{item}:{i}" for i in range(exits[item])]
        else:
            raise ConfigError(f"wise order: {item!r} is neither an exit ('mv:2') nor a trained modality ({', '.join(exits)})")
    repeated = sorted({exit for exit in order if order.count(exit) > 1})
    if repeated:
        raise ConfigError(
            f"wise order: {', '.join(repeated)} appears more than once; name each exit (or network) once"
        )
    return tuple(order)


#: the ``view`` setting of the training-time view (its segments, centre crop)
TRAINING_VIEW = "train"


def logits_view(run: RunDir, method: Method) -> str:
    """The test protocol (``flatkd evaluate --segments S --crops C``) whose validation and test
    logits every trained network of ``method`` has, the one with the most views per clip; else
    :data:`TRAINING_VIEW`."""
    trained = run.section("train", needs=f"flatkd train --run {run.path} --modality MODALITY")
    common: set[str] | None = None
    for modality in (m for m in MODALITIES if m in trained):
        for split in ("val", "test"):
            pattern = run.logits_path(method.logits_stage(modality), modality, split, "*")
            found = {p.name.removeprefix(f"{modality}.{split}.").removesuffix(".safetensors") for p in pattern.parent.glob(pattern.name)}
            common = found if common is None else common & found
    views = []
    for name in common or ():
        with contextlib.suppress(ConfigError):
            views.append(EvalView.parse(name))
    return max(views, key=lambda v: (v.segments * v.crops, v.crops)).name if views else TRAINING_VIEW


def _view_factor(run: RunDir, modality: str, view: str) -> float:
    """Network passes per clip under ``view`` over those of the training-time view (the MACs scale)."""
    if view == TRAINING_VIEW:
        return 1.0
    chosen = EvalView.parse(view)
    return chosen.segments * chosen.crops / load_train_config(run, modality).num_segments


def method_logits(
    run: RunDir, method: Method, split: str, view: str = TRAINING_VIEW
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Logits [N, E, K] of every trained modality under ``method`` (of test ``view``) and the
    shared labels [N]."""
    trained = run.section("train", needs=f"flatkd train --run {run.path} --modality MODALITY")
    stored = None if view == TRAINING_VIEW else view
    logits, labels = {}, None
    for modality in (m for m in MODALITIES if m in trained):
        stage = method.logits_stage(modality)
        if not run.logits_path(stage, modality, split, stored).is_file():
            fix = f"flatkd distill --run {run.path} --method {method.name}"
            if stored is not None:
                chosen = EvalView.parse(view)
                fix = f"flatkd evaluate --run {run.path} --stage {stage} --segments {chosen.segments} --crops {chosen.crops}"
            raise MissingPrerequisiteError(f"no {stage} logits of {modality} ({view} view): run `{fix}` first")
        logits[modality], these = run.load_logits(stage, modality, split, stored)
        if labels is not None and not torch.equal(labels, these):
            raise InputFileError(f"the {split} labels of {modality} differ from the other modalities' in {run.path}")
        labels = these
    if labels is None:
        raise MissingPrerequisiteError(f"{run.path} has no trained network: run `flatkd train` first")
    return logits, labels


def read_wise_results(run: RunDir) -> dict[str, WiseResult]:
    """The variants in ``wise.json`` (none before the first ``flatkd wise``)."""
    return load_wise(run.wise_path) if run.wise_path.is_file() else {}


def wise_for_run(
    run: RunDir, method: Method, config: WiseConfig, progress: ProgressFactory = no_progress
) -> tuple[str, WiseResult, list[Path]]:
    """Fit and evaluate WISE for ``method``; write every output; returns the variant name, the
    result and the files written."""
    view = config.view or logits_view(run, method)
    fit_logits, fit_labels = method_logits(run, method, "val", view)
    test_logits, test_labels = method_logits(run, method, "test", view)
    exits = {m: t.shape[1] for m, t in fit_logits.items()}
    order = expand_order(config.order, exits) if config.order else ()
    resolved = dataclasses.replace(config, order=order, view=view)
    macs, head_macs = (
        {m: [round(c * _view_factor(run, m, view)) for c in costs] for m, costs in table.items()}
        for table in (run.read_macs(), run.read_head_macs())
    )
    name = variant_name(method, config)
    with logged_stage(log, f"wise {name}", f"{sum(exits.values())} exits, {view} view"):
        result = run_wise(fit_logits, fit_labels, test_logits, test_labels, macs, head_macs, resolved, progress)
    run.set_section(["wise", name], to_dict(resolved))
    with run.lock():
        results = read_wise_results(run) | {name: result}
        save_wise(run.wise_path, results)
    written = [run.wise_path, _write_curves(run, results), _write_controls(run, results)]
    variants = {wise_variant_label(r): r for tag, r in results.items() if _method_of(tag) == method.name}
    curves, exits = wise_frames(variants)
    controls = wise_control_frame(variants)
    figure = wise_tradeoff_figure(curves, exits, title=f"WISE on {method.name} exits", controls=controls)
    written += save_figure(figure, run.figures_dir / f"wise_{method.name}.png")
    write_tables(run, results)
    written += [run.distill_table_path, run.distill_markdown_path]
    return name, result, written


def _method_of(variant: str) -> str:
    return variant.removesuffix("-no-lateral").removesuffix("-no-scaling")


def _write_curves(run: RunDir, results: Mapping[str, WiseResult]) -> Path:
    rows = [
        {
            "variant": tag,
            "method": _method_of(tag),
            "scaling": result.scaling,
            "lateral": result.lateral,
            "tau": point.tau,
            "accuracy": point.accuracy,
            "macs": point.macs,
            "chosen": point.tau == result.tau,
            "exit_fractions": " ".join(f"{f:.4f}" for f in point.exit_fractions),
        }
        for tag, result in results.items()
        for point in sorted({*result.curve, result.at_tau}, key=lambda p: p.tau)
    ]
    path = run.wise_curves_path
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)
    return path


def control_rows(results: Mapping[str, WiseResult]) -> pd.DataFrame:
    """One row per (variant, control): the table ``wise_controls.csv`` (module docstring)."""
    rows = [
        {
            "variant": tag,
            "method": _method_of(tag),
            "control": control.name,
            "label": control.label,
            "exits": " ".join(control.exits),
            "weights": " ".join(f"{w:.4g}" for w in control.weights),
            "accuracy": control.accuracy,
            "macs": control.macs,
            "wise_tau": result.tau,
            "wise_accuracy": result.at_tau.accuracy,
            "wise_macs": result.at_tau.macs,
            **{k: v for k, v in control.versus_wise.row().items() if k not in ("accuracy_a", "accuracy_b")},
        }
        for tag, result in results.items()
        for control in result.controls
    ]
    return pd.DataFrame(rows).rename(columns={"a_only": "wise_only", "b_only": "control_only"})


def _write_controls(run: RunDir, results: Mapping[str, WiseResult]) -> Path:
    path = run.wise_controls_path
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        control_rows(results).to_csv(handle, index=False)
    return path
