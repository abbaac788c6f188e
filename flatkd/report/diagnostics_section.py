"""The report's per-network diagnostics: which epochs each network's weights come from, how many
test clips it is judged on, chance, its accuracy by class and its confusion matrix, and a
warning for a degenerate network (:mod:`flatkd.runs.diagnostics`)."""

from __future__ import annotations

import math

from flatkd.report.markdown import FigureLinks, percent, table
from flatkd.runs.diagnostics import NetworkDiagnosis, StageEpochs, diagnose_run, stage_epochs
from flatkd.runs.rundir import RunDir


def diagnostics_section(run: RunDir, figures: FigureLinks) -> str:
    """A table of every trained network's final exit on test, its per-class accuracy (classes at
    0% in bold), a warning line per problem, and its confusion figure
    (``figures/confusion_<modality>.png``, written by :func:`flatkd.report.write_report`)."""
    diagnoses = diagnose_run(run)
    rows = [_row(d, stage_epochs(run, d.modality)) for d in diagnoses]
    headers = ["modality", "logits of", "backbone epoch", "IC epoch", "n", "chance 1/K", "majority class",
               "accuracy [95% CI]", "chance 95% range"]  # fmt: skip
    text = (
        "The final exit of every network on the test clips (training-time view). Epochs: the one each stage kept (the best on"
        " validation; counted from 1, as in the log lines) of those it ran. Chance: a uniform guess (1/K) and"
        " always answering the commonest test class; a network whose accuracy is not above the 95% range of"
        " the larger of the two is at chance.\n\n"
    )
    text += table(headers, rows, numeric_from=2)
    for d in diagnoses:
        text += f"\n{_per_class(d)}\n"
        text += "".join(f"\n**Warning: {d.network} {problem}.**\n" for problem in d.problems)
        text += figures.embed(f"confusion_{d.modality}", f"Confusion matrix of {d.network} on {d.split}")
    return text


def _row(d: NetworkDiagnosis, epochs: list[StageEpochs]) -> list[object]:
    report, accuracy, chance = d.report, d.report.accuracy, d.report.chance
    return [
        d.modality, d.stage, *(_epoch(e) for e in epochs), report.n, percent(report.uniform_chance),
        percent(report.majority_rate), f"{percent(accuracy.estimate)} [{percent(accuracy.low)}, {percent(accuracy.high)}]",
        f"{percent(chance.low)}–{percent(chance.high)}",
    ]  # fmt: skip


def _epoch(epochs: StageEpochs) -> str:
    """``3 of 12``: the kept epoch (from 1) of those run; ``–`` without the checkpoint."""
    chosen = "–" if epochs.chosen is None else str(epochs.chosen)
    return f"{chosen} of {epochs.run}"


def _per_class(d: NetworkDiagnosis) -> str:
    """``mv per-class accuracy (%): a 50.0, **b 0.0**, ...`` (0% in bold, ``–``: no test clip)."""
    cells, zero = [], 0
    for name, value in zip(d.classes, d.report.per_class.tolist(), strict=True):
        if math.isfinite(value) and value == 0:
            zero += 1
            cells.append(f"**{name} 0.0**")
        else:
            cells.append(f"{name} {percent(value)}")
    note = f" ({zero} of {len(d.classes)} classes at 0%)" if zero else ""
    return f"{d.modality} per-class accuracy (%){note}: {', '.join(cells)}."
