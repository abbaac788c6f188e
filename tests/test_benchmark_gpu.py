"""``benchmarks/gpu.py`` end to end on the CPU (``--device cpu --tiny``), so that its first run on a
GPU machine is not its first run: every section produces its rows, finite numbers, and the CSV."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--tiny", "--no-compile",
               "--out", str(tmp_path)]  # fmt: skip
    environment = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "gpu.csv")
    assert list(table.columns) == ["section", "case", "value", "unit", "note"]
    assert all(math.isfinite(v) and v >= 0 for v in table["value"])
    train = table[table["section"] == "train"]
    for modality in ("iframe", "mv", "residual"):
        cases = set(train["case"][train["case"].str.startswith(f"{modality} backbone")])
        assert {f"{modality} backbone fp32", f"{modality} backbone fp32 channels_last"} <= cases
    assert "iframe ic-ce fp32 channels_last" in set(train["case"])
    assert (train["value"] > 0).all() and (train["unit"] == "frames/s").all()
    hessian = table[table["section"] == "hessian"].set_index("case")
    assert (hessian["value"][hessian["unit"] == "HVPs/s"] > 0).sum() == 2
    assert (hessian["value"][hessian["unit"] == "relative"] == 0).all()  # cpu vs cpu: the same numbers
    assert set(table["section"]) == {"train", "hessian", "gloo"}
    assert "collective paths / alone" in " ".join(table["case"]) and "PASS" in result.stdout
