"""``flatkd train`` in a batch job (stdout/stderr not a terminal, as under nohup): one log line
per epoch on stderr without -v, epochs counted from 1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


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
