"""Per-network diagnostics read from a run directory's logits alone (:mod:`flatkd.runs.diagnostics`)."""

from __future__ import annotations

from pathlib import Path

import torch

from flatkd.runs.diagnostics import diagnose_network
from flatkd.runs.rundir import RunDir


def test_a_network_is_judged_by_its_final_exit_and_an_empty_file_by_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.zeros(6, 2, 3)
    logits[:, 0] = torch.nn.functional.one_hot(labels, 3).float()  # an early exit that is right
    logits[:, 1, 2] = 1.0  # the final exit answers class 2 for every clip
    run.save_logits("ic-ce", "mv", "test", logits, labels)
    diagnosis = diagnose_network(run, "mv")
    assert diagnosis is not None and diagnosis.classes == ("0", "1", "2")  # no class names recorded: numbers
    assert diagnosis.report.correct == 2 and diagnosis.problems == [
        "predicts class '2' for every one of its 6 test clips",
        "test accuracy 33.3% (2/6) is within the 95% range of chance (33.3%: 0.0%-66.7% on 6 clips)",
    ]
    logits[:, 1] = logits[:, 0]
    run.save_logits("ic-ce", "mv", "test", logits, labels)
    healthy = diagnose_network(run, "mv")
    assert healthy is not None and healthy.problems == [] and healthy.report.per_class.tolist() == [1.0, 1.0, 1.0]

    run.save_logits("ic-ce", "mv", "val", torch.zeros(0, 2, 3), torch.zeros(0, dtype=torch.long))
    assert diagnose_network(run, "mv", split="val") is None
