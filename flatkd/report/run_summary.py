"""The report's first sections: the data and training settings of a run, and the accuracy and
cost of every exit after ``flatkd train`` (stage ``ic-ce``: backbone with CE on its final exit,
then the internal classifiers with CE, backbone frozen)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from flatkd.data import open_dataset
from flatkd.data.synth.build import SETTINGS_FILE
from flatkd.errors import FlatkdError
from flatkd.fileio import read_json
from flatkd.modalities import MODALITIES
from flatkd.report.markdown import number, percent, table, todo
from flatkd.runs.data_source import DataSource, resolve_data_source
from flatkd.runs.heads import FinalHeads, final_heads
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import TRAIN_STAGES, Stage
from flatkd.runs.training import load_train_config
from flatkd.stats import wilson_interval


def trained_modalities(run: RunDir) -> list[str]:
    """The modalities with a ``train`` section in the run's config, in the canonical order."""
    trained = run.read_config().get("train") or {}
    return [m for m in MODALITIES if m in trained]


def has_trained_network(run: RunDir) -> bool:
    """Whether some modality finished a training stage (its test logits exist)."""
    return any(run.logits_path(s, m, "test").is_file() for m in trained_modalities(run) for s in TRAIN_STAGES)


def data_section(run: RunDir, accuracy: pd.DataFrame) -> str:
    """Dataset, split, classes and clips per split (counted from the split files when the dataset
    folder is readable here, else the validation/test clips from the saved logits)."""
    source = resolve_data_source(run, None)
    lines = [f"- Dataset: {_describe_dataset(source)}, split {source.split}."]
    if source.classes:
        lines.append(f"- Classes ({len(source.classes)}): {', '.join(source.classes)}.")
    carve = f"{source.val_fraction:.0%} of the training list, seed {source.val_seed}"
    try:
        splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
        lines.append(f"- Clips: {len(splits.train)} train, {len(splits.val)} validation ({carve}), {len(splits.test)} test.")
    except FlatkdError as exc:
        counts = accuracy.groupby("split")["clips"].first().to_dict()
        lines.append(
            f"- Clips: {counts.get('val', '?')} validation ({carve}), {counts.get('test', '?')} test"
            f" (the dataset folder is not readable here: {exc})."
        )
    return "\n".join(lines) + "\n"


def training_section(run: RunDir, accuracy: pd.DataFrame) -> str:
    """Settings, epochs and time of each modality network, then validation/test accuracy and
    MACs of every exit."""
    modalities = trained_modalities(run)
    metrics = run.read_metrics()
    rows = []
    for modality in modalities:
        config = load_train_config(run, modality)
        own = metrics[(metrics["modality"] == modality) & metrics["stage"].isin(TRAIN_STAGES)] if not metrics.empty else metrics
        rows.append(
            [
                modality, config.preset, config.input_size, config.num_segments, ", ".join(config.exits),
                _epochs(own, Stage.BACKBONE, config.backbone.epochs), _epochs(own, Stage.IC_CE, config.ics.epochs),
                config.batch_size, f"{config.backbone.optim.name} {config.backbone.optim.lr:g}", config.seed,
                number(own["seconds"].sum(), 3) if not own.empty else "–",
            ]
        )  # fmt: skip
    headers = ["modality", "preset", "input px", "segments", "exits", "backbone epochs", "IC epochs", "batch",
               "optimiser, lr", "seed", "time (s)"]  # fmt: skip
    text = table(headers, rows, numeric_from=5)
    text += "\nEpochs are those run / those set; the best epoch of each stage is chosen on validation.\n"
    return text + "\n" + _exit_table(run, accuracy, modalities)


def _exit_table(run: RunDir, accuracy: pd.DataFrame, modalities: list[str]) -> str:
    ce = accuracy[accuracy["method"] == "ce"]
    try:
        macs = run.read_macs()
    except FlatkdError:
        macs = {}
    rows, notes = [], []
    for modality in modalities:
        own = ce[ce["modality"] == modality]
        if own.empty:
            notes.append(todo(f"{modality}: training unfinished (no ic-ce logits)",
                              f"flatkd train --run {run.path} --modality {modality} --resume"))  # fmt: skip
            continue
        cells = own.pivot_table(index=["exit", "exit_name"], columns="split", values="accuracy")
        for (index, name), values in cells.iterrows():
            cost = macs.get(modality, [])
            test = values.get("test")
            clips = int(own.loc[own["split"] == "test", "clips"].iloc[0]) if test is not None else 0
            interval = wilson_interval(round(test * clips), clips) if clips and math.isfinite(test) else None
            rows.append(
                [modality, f"{index} {name}", percent(values.get("val")), percent(test),
                 f"{percent(interval.low)}–{percent(interval.high)}" if interval else "–",
                 f"{cost[index] / 1e6:.2f}" if index < len(cost) else "–"]
            )  # fmt: skip
    text = (
        "Accuracy (%) of every exit after training (stage ic-ce), the test accuracy's Wilson 95% interval, and"
        " MACs per clip of the path to it.\n\n"
    )
    if rows:
        text += table(["modality", "exit", "validation", "test", "test 95% CI", "MMACs"], rows, numeric_from=2)
    if rows and not notes:
        text += "\n" + _heads_table(final_heads(run))
    return text + "".join(f"\n{note}" for note in notes)


def _heads_table(heads: FinalHeads) -> str:
    """The final heads, their fusion and pairwise top-class agreement (:mod:`flatkd.runs.heads`)."""
    cells = [f"{name} {percent(i.estimate)} [{percent(i.low)}, {percent(i.high)}]" for name, i in heads.accuracy.items()]
    pairs = [f"{a}-{b} {percent(value)}" for (a, b), value in heads.agreement.items()]
    return (
        f"Final heads on test ({heads.clips} clips; fused = mean of the softmax scores): {', '.join(cells)}."
        f" Top-class agreement of the pairs of final heads: {', '.join(pairs)}.\n"
    )


def _describe_dataset(source: DataSource) -> str:
    root = Path(source.dir)
    if (root / SETTINGS_FILE).is_file():
        settings = read_json(root / SETTINGS_FILE)
        return (
            f"synthetic (`flatkd data synth`, design {settings.get('design', 'factorial')}:"
            f" {settings.get('clips_per_class', '?')} clips per class,"
            f" {settings.get('frames', '?')} frames of {settings.get('width', '?')}x{settings.get('height', '?')} px,"
            f" difficulty {settings.get('difficulty', '?')}, seed {settings.get('seed', '?')}) in `{root}`"
        )
    return f"`{root}`"


def _epochs(metrics: pd.DataFrame, stage: str, planned: int) -> str:
    done = int((metrics["stage"] == stage).sum()) if not metrics.empty else 0
    return f"{done}/{planned}"

