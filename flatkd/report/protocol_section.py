"""The report's test-protocol section: every exit's test accuracy under the papers' protocol
(``flatkd evaluate --segments 25 --crops 10``, :mod:`flatkd.data.views`) beside the same exit
under the training-time view, for every stage and network that has such logits."""

from __future__ import annotations

import math

from flatkd.errors import FlatkdError
from flatkd.modalities import MODALITIES
from flatkd.report.markdown import percent, table, todo
from flatkd.runs.methods import METHODS
from flatkd.runs.rundir import RunDir
from flatkd.runs.wise import logits_view
from flatkd.stats import wilson_interval
from flatkd.train import exit_accuracy


def protocol_section(run: RunDir) -> str:
    """One row per (stage, modality, exit) with logits of a test view (the view named in each
    row), or a note naming the command that computes them."""
    rows = []
    trained = run.read_config().get("train") or {}
    stages = dict.fromkeys(method.stage for method in METHODS.values())
    for stage in stages:
        for modality in (m for m in MODALITIES if m in trained):
            pattern = run.logits_path(stage, modality, "test", "*")
            for path in sorted(pattern.parent.glob(pattern.name)):
                view = path.name.removeprefix(f"{modality}.test.").removesuffix(".safetensors")
                try:
                    logits, labels = run.load_logits(stage, modality, "test", view)
                    plain = exit_accuracy(*run.load_logits(stage, modality, "test")).tolist()
                except FlatkdError:
                    continue
                for index, accuracy in enumerate(exit_accuracy(logits, labels).tolist()):
                    n = len(labels)
                    ci = wilson_interval(round(accuracy * n), n) if n and math.isfinite(accuracy) else None
                    rows.append(
                        [stage, modality, index, view, n, percent(accuracy),
                         f"{percent(ci.low)}–{percent(ci.high)}" if ci else "–", percent(plain[index])]
                    )  # fmt: skip
    if not rows:
        return todo(
            "test accuracy under the papers' protocol (25 segments x 10 crops) not computed",
            f"flatkd evaluate --run {run.path} --segments 25 --crops 10",
        )
    views = {stage: logits_view(run, method) for method in METHODS.values() for stage in [method.stage]}
    used = ", ".join(f"{s} {v}" for s, v in views.items() if v != "train")
    text = (
        "Test accuracy (%) of every exit under a test view SxC (S evenly spaced segments x C crops: 1 = centre,"
        " 10 = centre and corners, each also flipped; logits averaged over the views), its Wilson 95% interval,"
        " and the same exit under the training-time view (its segments, centre crop)."
        + (f" WISE reads the protocol view of: {used}." if used else "")
        + "\n\n"
    )
    return text + table(["stage", "modality", "exit", "view", "clips", "test", "test 95% CI", "training view"], rows, numeric_from=4)
