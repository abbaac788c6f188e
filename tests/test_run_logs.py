"""``RUN/train.log`` and the stage lines: every command that works on a run (train, evaluate,
rank-modalities, distill, wise) appends its INFO lines there, each stage, method and measurement
logs where it starts and finishes, and under torchrun only rank 0 logs."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from helpers.cli import run_flatkd
from helpers.demo import DemoRun

from flatkd.cli.common import run_log
from flatkd.progress import format_seconds, logged_stage


def test_a_finished_demo_logs_every_command_and_stage(demo_run: DemoRun) -> None:
    logged = (demo_run.run / "train.log").read_text(encoding="utf-8")
    for pattern in (
        r"INFO: backbone mv: started \(1 epochs\)",  # train
        r"INFO: flatness \S+ iframe exit \d+ subset 1/\d+: started \(\d+ clips\)",  # rank-modalities
        r"INFO: flatness \S+ mv exit \d+ subset 1/\d+: done in \d",
        r"INFO: distill pkd: started \(iframe, mv, residual\)",  # distill
        r"INFO: ic-pkd residual: started \(3 epochs, teachers \w+",
        r"INFO: ic-pkd mv epoch 3/3: train_loss",
        r"INFO: ic-pkd residual: done in \d",
        r"INFO: distill pkd: done in \d",
        r"INFO: genkd-teacher iframe: done in \d",
        r"INFO: wise pkd: started \(\d+ exits, train view\)",  # wise
        r"INFO: wise pkd: done in \d",
    ):
        assert re.search(pattern, logged), pattern


def test_evaluate_appends_to_the_run_log(demo_run: DemoRun, tmp_path: Path) -> None:
    run = shutil.copytree(demo_run.run, tmp_path / "run")
    result = run_flatkd("evaluate", "--run", str(run), "--modality", "mv")
    assert result.exit_code == 0, result.output
    logged = (run / "train.log").read_text(encoding="utf-8")
    assert re.search(r"INFO: logits ic-ce mv: started \(\d+ validation \+ \d+ test clips\)", logged)
    assert re.search(r"INFO: logits ic-ce mv: done in \d", logged)


def test_run_log_of_a_process_other_than_rank_0_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("flatkd.runs.test")
    with caplog.at_level(logging.INFO), run_log(tmp_path / "run", main=False):
        log.info("an epoch line")
        log.warning("a warning")
    assert [r.getMessage() for r in caplog.records] == ["a warning"]
    assert not (tmp_path / "run").exists()
    with run_log(tmp_path / "run", main=True):
        log.info("an epoch line")
    assert (tmp_path / "run" / "train.log").read_text(encoding="utf-8").endswith("INFO: an epoch line\n")


def test_logged_stage_logs_its_start_and_finish_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("flatkd.runs.test")
    with caplog.at_level(logging.INFO):
        with logged_stage(log, "ic-pkd mv", "3 epochs"):
            pass
        with pytest.raises(ValueError), logged_stage(log, "ic-kd mv"):
            raise ValueError
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "ic-pkd mv: started (3 epochs)"
    assert re.fullmatch(r"ic-pkd mv: done in \d\.\d s", messages[1])
    assert messages[2:] == ["ic-kd mv: started"]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.42, "0.4 s"), (41.3, "41 s"), (125, "2 min 5 s"), (3000, "50 min"), (7400, "2 h 3 min")]
)
def test_format_seconds(seconds: float, shown: str) -> None:
    assert format_seconds(seconds) == shown
