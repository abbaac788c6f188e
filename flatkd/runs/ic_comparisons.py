"""The IC methods of a run side by side: which checkpoint each IC kept and under which teacher,
what budget each method trained with, and paired comparisons between methods.

- :func:`selection_rows`: per (method, modality, IC) the selection mode, the epoch kept and the
  teacher at that epoch (``own``, a modality, or ``none`` for label CE), from the record
  :func:`flatkd.runs.ic_training.write_selection` leaves beside each checkpoint (for ``ic-ce``
  trained by ``flatkd train``, which has none: its whole-network best epoch, teacher ``none``).
- :func:`budget_markdown`: IC epochs, optimiser and batch size of every method, each marked where
  it (or its schedule) differs from CE's (:func:`budget_differences`); unequal budgets are
  stated, never compared silently, and ``flatkd distill`` warns when it trains one.
- :func:`method_comparisons` / :func:`comparisons_markdown`: PKD against CE and against own-head
  KD (and every other method against CE) on every IC, as paired differences over the test clips
  with a bootstrap 95% interval and McNemar's p (:mod:`flatkd.runs.comparisons`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from flatkd.config import to_dict
from flatkd.runs.comparisons import Comparison, paired_markdown, paired_rows
from flatkd.runs.ic_training import NO_TEACHER, network_selection, read_selection, selection_path
from flatkd.runs.methods import METHODS, Method
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import differences
from flatkd.runs.stages import FINAL_TRAIN_STAGE
from flatkd.runs.training import load_train_config
from flatkd.train.checkpoint import load_resume

SELECTION_COLUMNS = ["method", "modality", "exit", "select", "selected_epoch", "teacher"]


def stage_selection(run: RunDir, method: Method, modality: str) -> pd.DataFrame:
    """:data:`SELECTION_COLUMNS` rows of ``method``'s ICs of ``modality`` (empty: not trained)."""
    stage = method.logits_stage(modality)
    record_path = selection_path(run, stage, modality)
    if record_path.is_file():
        record = read_selection(record_path)
        rows = [[method.name, modality, r["exit"], record["select"], r["epoch"], r["teacher"]] for r in record["ics"]]
    elif stage == FINAL_TRAIN_STAGE and run.resume_path(stage, modality).is_file():
        state = load_resume(run.resume_path(stage, modality))
        ics = range(len(load_train_config(run, modality).exits))
        rows = [[method.name, modality, i, "network", e, NO_TEACHER] for i, (e, _) in enumerate(network_selection(state, ics))]
    else:
        rows = []
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def selection_rows(run: RunDir, modalities: Sequence[str]) -> pd.DataFrame:
    """:func:`stage_selection` of every method and of ``modalities``."""
    parts = [stage_selection(run, m, modality) for m in METHODS.values() for modality in modalities if m.trains(modality)]
    return pd.concat([p for p in parts if not p.empty] or [pd.DataFrame(columns=SELECTION_COLUMNS)], ignore_index=True)


def selection_markdown(table: pd.DataFrame, split: str = "test") -> str:
    """Per method and modality: the epoch kept and its teacher for every IC, and how many of the
    kept ICs were trained under their own network's head at that epoch (``table``: distill.csv)."""
    ics = table[table["split"] == split].dropna(subset=["selected_epoch"])
    if ics.empty:
        return ""
    lines = [
        "Checkpoint kept for every IC (selected on validation): epoch (0-based) and the teacher it was trained"
        " under at that epoch (own = its network's final head, none = label CE).",
        "",
        "| method | modality | selection | epoch, teacher per IC | own-head ICs |",
        "|---|---|---|---|---:|",
    ]
    for (method, modality), rows in ics.groupby(["method", "modality"], sort=False):
        rows = rows.sort_values("exit")
        cells = ", ".join(f"{int(r.exit)}: e{int(r.selected_epoch)} {r.teacher}" for r in rows.itertuples())
        own = f"{int((rows['teacher'] == 'own').sum())}/{len(rows)}"
        lines.append(f"| {method} | {modality} | {rows['select'].iloc[0]} | {cells} | {own} |")
    return "\n".join(lines) + "\n"


def method_budget(run: RunDir, method: Method, modality: str) -> dict[str, Any] | None:
    """IC epochs, optimiser, schedule and batch size ``method`` trained ``modality``'s ICs with
    (None: not run). Every IC stage of a run draws the same batches per epoch (same training
    split, batch size and seed stream), so epochs x batch size is the budget."""
    train = load_train_config(run, modality)
    if method.name == "ce":
        ics = to_dict(train.ics)
    else:
        recorded = run.read_config().get("distill", {}).get(method.name, {}).get(modality)
        if recorded is None:
            return None
        ics = recorded["ics"]
    return {"epochs": ics["epochs"], "optim": ics["optim"], "schedule": ics["schedule"], "batch_size": train.batch_size}


def budget_differences(run: RunDir, method: Method, modality: str) -> list[str]:
    """Where ``method``'s IC budget of ``modality`` differs from the CE baseline's, as
    ``key: ce's -> method's`` (``epochs: 3 -> 2``); empty when equal or not run."""
    base, budget = method_budget(run, METHODS["ce"], modality), method_budget(run, method, modality)
    return [] if base is None or budget is None else differences(base, budget)


def budget_markdown(run: RunDir, table: pd.DataFrame) -> str:
    """Budget of every method found in ``table`` (distill.csv) per modality, each field that
    differs from CE's named, so that no comparison below is of unequal budgets unannounced."""
    lines = ["Budget of the IC stages (same seed stream, so the same batches in the same order, and the same initial ICs):", ""]
    for modality in dict.fromkeys(table["modality"]):
        for name in (m for m in METHODS if m in set(table["method"])):
            budget = method_budget(run, METHODS[name], modality)
            if budget is None or not METHODS[name].trains(modality):
                continue
            differs = budget_differences(run, METHODS[name], modality)
            note = f"; differs from ce ({', '.join(differs)}): not an equal-budget comparison" if differs else ""
            optim = budget["optim"]
            lines.append(
                f"- {modality} {name}: {budget['epochs']} epochs, {optim['name']} lr {optim['lr']:g},"
                f" batch {budget['batch_size']}{note}"
            )
    return "\n".join(lines) + "\n"


def method_comparisons(table: pd.DataFrame, split: str = "test") -> list[Comparison]:
    """Every method against CE, and every chain-ordered method (PKD) against own-head KD, on each
    IC of each modality that ``table`` (distill.csv) holds for both (difference method - baseline)."""
    present = [m for m in METHODS if m in set(table["method"])]
    pairs = [(m, "ce") for m in present if m != "ce"]
    pairs += [(m, "kd") for m in present if METHODS[m].needs_chain and "kd" in present]
    ics = table[(table["split"] == split) & table["selected_epoch"].notna()]
    found = set(zip(ics["method"], ics["modality"], ics["exit"]))
    return [
        Comparison.of_methods(METHODS[a], METHODS[b], modality, int(exit_), split)
        for a, b in pairs
        for method, modality, exit_ in sorted(found)
        if method == a and (b, modality, exit_) in found
    ]


def comparisons_table(run: RunDir, table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The paired rows (:func:`flatkd.runs.comparisons.paired_rows`) of :func:`method_comparisons`."""
    return paired_rows(run, method_comparisons(table, split))


def comparisons_markdown(paired: pd.DataFrame) -> str:
    """The paired table of every method comparison (empty string when there is none)."""
    return paired_markdown(paired, "Methods compared IC by IC on the same clips")


def with_selection(run: RunDir, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (accuracy rows of distill.csv) with the selection columns of every IC row (the
    final head, trained by no IC stage, and stages without a record get none)."""
    key = ["method", "modality", "exit"]
    selection = selection_rows(run, list(dict.fromkeys(table["modality"])))
    if table.empty or selection.empty:
        return table.assign(**{c: pd.NA for c in SELECTION_COLUMNS if c not in key})
    merged = table.astype({"exit": int}).merge(selection.astype({"exit": int}), how="left", on=key)
    return merged.astype({"selected_epoch": "Int64"})


def ic_methods_markdown(run: RunDir, table: pd.DataFrame) -> str:
    """The selection, budget and paired-comparison parts of distill.md for ``table`` (distill.csv)."""
    if table.empty:
        return ""
    parts = [selection_markdown(table), budget_markdown(run, table), comparisons_markdown(comparisons_table(run, table))]
    return "\n".join(p for p in parts if p)
