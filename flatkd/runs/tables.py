"""The distillation results of a run directory as tables: ``distill.csv`` and ``distill.md``.

Both are rebuilt from what the run directory holds (never appended to), after every
``flatkd distill`` and ``flatkd wise``:

- ``distill.csv``: one row per (method, modality, exit, split) whose logits exist: ``method,
  stage, modality, exit, exit_name, split, accuracy, clips, seed``, and for every IC the
  ``select``-ion mode, the ``selected_epoch`` kept and the ``teacher`` it was trained under at that
  epoch (:mod:`flatkd.runs.ic_comparisons`). The CE baseline is the ``ic-ce`` stage ``flatkd
  train`` writes, so it is there from the start.
- ``distill.md``: test accuracy (%) per modality x exit, one column per method, plus the mean
  over the internal classifiers; the epoch and teacher kept for every IC, each method's budget,
  and every method against CE (PKD also against own-head KD) IC by IC with paired bootstrap 95%
  intervals and McNemar p; then, when ``wise.json`` exists, one line per WISE variant:
  accuracy and mean MACs per clip at its threshold tau, the full cascade (every exit), and the
  best single exit of the cascade with its MACs; and WISE against its controls (late fusion,
  uniform sum, best exit) with paired 95% intervals and McNemar p;
- ``genkd_controls.csv`` and the GenKD section of ``distill.md``, once generative KD ran:
  ``genkd`` against its controls on the student final heads, paired (:mod:`flatkd.runs.genkd_tables`),
  and the gradient of its teacher terms relative to the task gradient;
- ``figures/distill_exits.png``: the test accuracy of every exit as bars, one per method.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from flatkd.distill.wise import ControlPoint, WiseResult
from flatkd.fileio import atomic_open, write_text
from flatkd.modalities import MODALITIES
from flatkd.models import STAGE_NAMES
from flatkd.plots import save_figure
from flatkd.plots.distill import exit_accuracy_figure
from flatkd.runs.genkd_tables import genkd_markdown, genkd_paired_rows, gradient_ratio_rows
from flatkd.runs.ic_comparisons import ic_methods_markdown, with_selection
from flatkd.runs.methods import METHODS
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import load_train_config
from flatkd.train import exit_accuracy

SPLITS = ("val", "test")
COLUMNS = ["method", "stage", "modality", "exit", "exit_name", "split", "accuracy", "clips", "seed"]


def accuracy_rows(run: RunDir) -> pd.DataFrame:
    """Accuracy of every exit of every method, modality and split found in ``run``."""
    trained = run.read_config().get("train", {})
    configs = {m: load_train_config(run, m) for m in MODALITIES if m in trained}
    rows = []
    for method in METHODS.values():
        for modality, config in ((m, c) for m, c in configs.items() if method.trains(m)):
            names = [n for n in STAGE_NAMES[:3] if n in config.exits] + ["fc"]
            for split in SPLITS:
                if not run.logits_path(method.stage, modality, split).is_file():
                    continue
                logits, labels = run.load_logits(method.stage, modality, split)
                for index, accuracy in enumerate(exit_accuracy(logits, labels).tolist()):
                    rows.append(
                        [method.name, method.stage, modality, index, names[index], split, accuracy, len(labels), config.seed]
                    )
    return with_selection(run, pd.DataFrame(rows, columns=COLUMNS))


def accuracy_markdown(table: pd.DataFrame, split: str = "test") -> str:
    """Accuracy (%) per modality x exit (rows) and method (columns), with each method's mean over
    the internal classifiers."""
    part = table[table["split"] == split]
    if part.empty:
        return f"No {split} logits yet.\n"
    methods = [m for m in METHODS if m in set(part["method"])]
    clips = int(part["clips"].iloc[0])
    lines = [
        f"{split.capitalize()} accuracy (%) of every exit ({clips} clips); all splits in distill.csv.",
        "",
        "| modality | exit | " + " | ".join(methods) + " |",
        "|---|---|" + "---:|" * len(methods),
    ]
    for modality in [m for m in MODALITIES if m in set(part["modality"])]:
        rows = part[part["modality"] == modality]
        cells = rows.pivot_table(index=["exit", "exit_name"], columns="method", values="accuracy")
        for (index, name), values in cells.iterrows():
            lines.append(f"| {modality} | {index} {name} | " + " | ".join(_percent(values.get(m)) for m in methods) + " |")
        ics = cells.iloc[:-1].mean()
        lines.append(f"| {modality} | IC mean | " + " | ".join(_percent(ics.get(m)) for m in methods) + " |")
    return "\n".join(lines) + "\n"


def wise_markdown(results: Mapping[str, WiseResult], views: Mapping[str, str] | None = None) -> str:
    """One line per WISE variant: at its tau, with every exit, and the best single exit; ``views``:
    the test view each variant read (``train`` or a protocol such as ``25x10``)."""
    lines = [
        "WISE on the test split (weights fitted on validation); MACs are mean MMACs per clip. View: `train` is the"
        " training-time view (its segments, centre crop), `SxC` the test protocol of S segments x C crops.",
        "",
        "| variant | tau | accuracy | MMACs | all exits: accuracy | MMACs | best single exit | accuracy | MMACs | view |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for tag, result in results.items():
        best = result.best_exit()
        lines.append(
            f"| {tag} | {result.tau:g} | {_percent(result.at_tau.accuracy)} | {result.at_tau.macs / 1e6:.2f}"
            f" | {_percent(result.step_accuracy[-1])} | {result.step_macs[-1] / 1e6:.2f}"
            f" | {result.order[best]} | {_percent(result.exit_accuracy[best])} | {result.exit_macs[best] / 1e6:.2f}"
            f" | {(views or {}).get(tag) or 'train'} |"
        )
    with_controls = {tag: r for tag, r in results.items() if r.controls}
    return "\n".join(lines) + "\n" + (f"\n{wise_controls_markdown(with_controls)}" if with_controls else "")


def wise_views(run: RunDir, results: Mapping[str, WiseResult]) -> dict[str, str]:
    """The test view each WISE variant read, as recorded under ``wise.<variant>.view``."""
    recorded = run.read_config().get("wise") or {}
    return {tag: (recorded.get(tag) or {}).get("view") or "train" for tag in results}


def wise_controls_markdown(results: Mapping[str, WiseResult]) -> str:
    """Per WISE variant: WISE at its tau, then each control (best single exit, late fusion of the
    final heads, uniform sum of all exits) with its accuracy, MACs, the paired difference
    WISE - control and McNemar's p (:class:`flatkd.distill.wise.ControlPoint`)."""
    clips = next(c.versus_wise.n for r in results.values() for c in r.controls)
    lines = [
        f"WISE at its tau against its controls on the test split ({clips} clips): difference WISE - control in"
        " points with the paired bootstrap 95% interval, exact McNemar p. Late-fusion weights fitted on validation;"
        " the best single exit is chosen on test.",
        "",
        "| variant | point | exits / weights | accuracy | MMACs | WISE - point [95% CI] | McNemar p |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for tag, result in results.items():
        lines.append(
            f"| {tag} | WISE at tau {result.tau:g} | {len(result.order)}-step cascade"
            f" | {_percent(result.at_tau.accuracy)} | {result.at_tau.macs / 1e6:.2f} | | |"
        )
        for control in result.controls:
            paired = control.versus_wise
            lines.append(
                f"| {tag} | {control.label} | {_ensemble_weights(control)} | {_percent(control.accuracy)}"
                f" | {control.macs / 1e6:.2f} | {paired.difference.format(scale=100)} | {paired.p_value:.3g} |"
            )
    return "\n".join(lines) + "\n"


def _ensemble_weights(control: ControlPoint) -> str:
    """``mv:3``, ``12 exits, weight 1 each`` or ``iframe:3 0.5, mv:3 0.25, residual:3 0.25``."""
    if len(control.exits) == 1:
        return control.exits[0]
    if set(control.weights) == {1.0}:
        return f"{len(control.exits)} exits, weight 1 each"
    return ", ".join(f"{exit_} {weight:.3g}" for exit_, weight in zip(control.exits, control.weights, strict=True))


def accuracy_by_exit(table: pd.DataFrame, split: str = "test") -> dict[str, dict[str, list[float]]]:
    """Accuracy (%) of every exit from an :func:`accuracy_rows` table: ``[method][modality][exit]``,
    methods in :data:`METHODS` order, modalities in :data:`MODALITIES` order (empty: no logits)."""
    part = table[table["split"] == split]
    out: dict[str, dict[str, list[float]]] = {}
    for method in (m for m in METHODS if m in set(part["method"])):
        for modality in MODALITIES:
            rows = part[(part["method"] == method) & (part["modality"] == modality)]
            if not rows.empty:
                out.setdefault(method, {})[modality] = (100 * rows.sort_values("exit")["accuracy"]).tolist()
    return out


def write_tables(run: RunDir, wise: Mapping[str, WiseResult] | None = None) -> pd.DataFrame:
    """Rebuild ``distill.csv``, ``distill.md`` (with the WISE results, if any) and
    ``figures/distill_exits.png`` (test accuracy per exit, one bar per method) from the run."""
    table = accuracy_rows(run)
    with atomic_open(run.distill_table_path, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)
    text = f"# Distillation results: {run.path.name}\n\n{accuracy_markdown(table)}"
    text += f"\n{ic_methods_markdown(run, table)}"
    genkd = genkd_paired_rows(run)
    if not genkd.empty:
        with atomic_open(run.genkd_controls_path, "w", encoding="utf-8", newline="") as handle:
            genkd.to_csv(handle, index=False)
        text += f"\n{genkd_markdown(genkd, gradient_ratio_rows(run))}"
    if wise:
        text += f"\n{wise_markdown(wise, wise_views(run, wise))}"
    write_text(run.distill_markdown_path, text)
    accuracy = accuracy_by_exit(table)
    if accuracy:
        title = f"{run.path.name}: test accuracy per exit"
        save_figure(exit_accuracy_figure(accuracy, title=title), run.figures_dir / "distill_exits.png")
    return table


def _percent(value: float | None) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.1f}"
