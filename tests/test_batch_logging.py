"""``flatkd train`` in a batch job (stdout/stderr not a terminal, as under nohup): one log line
per epoch on stderr without -v, epochs counted from 1; Ctrl-C ends it with one line and exit
status 130, and ``--resume`` continues."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import run_flatkd

from flatkd.cli.common import describe_interrupt


def test_train_without_a_terminal_logs_one_line_per_epoch(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = ["train", "--data", str(dataset), "--modality", "mv", "--run", str(run), "--set", "input_size=32",
            "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4", "--epochs", "2", "--ic-epochs", "1"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "flatkd", *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"^flatkd: INFO: (\S+) mv epoch (\d+)/(\d+): train_loss .* lr .* data_wait", result.stderr, re.M)
    assert lines == [("backbone", "1", "2"), ("backbone", "2", "2"), ("ic-ce", "1", "1")]
    logged = (run / "train.log").read_text(encoding="utf-8")
    assert len(re.findall(r" INFO: \S+ mv epoch \d+/\d+: train_loss", logged)) == 3


def test_ctrl_c_ends_train_with_one_line_and_resume_finishes(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = ["train", "--data", str(dataset), "--modality", "mv", "--run", str(run), "--set", "input_size=32",
            "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4", "--epochs", "40", "--ic-epochs", "1"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    flatkd = [sys.executable, "-m", "flatkd"]
    with subprocess.Popen([*flatkd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if " mv epoch 1/40:" in line:
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    shown = [line for line in rest.splitlines() if not line.startswith("flatkd: INFO:")]
    assert shown == [f"flatkd: interrupted: {run} keeps the last finished epoch; rerun with --resume to continue"]
    finished = subprocess.run([*flatkd, *args, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    epochs = re.findall(r"^flatkd: INFO: backbone mv epoch (\d+)/40:", finished.stderr, re.M)
    assert epochs and epochs[-1] == "40" and int(epochs[0]) > 1  # continued, not restarted


def test_interrupt_line_names_the_run_and_how_to_continue() -> None:
    assert describe_interrupt(["rank-modalities", "--quick", "--run=runs/a"]) == (
        "interrupted: runs/a keeps the finished measurements (flatness/); run the same command again to continue"
    )
    assert describe_interrupt(["wise", "--run", "runs/a"]) == "interrupted (runs/a)"
    assert describe_interrupt(["report"]) == "interrupted"


def test_ctrl_c_in_any_command_is_one_line_or_with_debug_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("flatkd.report.write_report", interrupted)
    result = run_flatkd("report", "--run", str(tmp_path))
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == [f"flatkd: interrupted ({tmp_path})"]
    debug = run_flatkd("--debug", "report", "--run", str(tmp_path))
    assert debug.exit_code == 130
    assert "Traceback" in debug.stderr and debug.stderr.strip().endswith(f"flatkd: interrupted ({tmp_path})")
