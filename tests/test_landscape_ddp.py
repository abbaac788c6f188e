"""``flatkd rank-modalities`` under torchrun: 2 CPU processes (gloo) measure what one process does.

Each process takes every second clip of each subset; every Hessian-vector product, gradient and
surface loss is the all-reduced sum of the two shares (:mod:`flatkd.landscape.objective`). The
arithmetic is that of one process up to the order of floating-point sums (two half-batch
reductions + one all-reduce vs. one reduction over the batch), so the numbers agree to float32
rounding amplified a little by Lanczos, not bit for bit. "Different" would look very different:
one process measuring a subset of half the size gets another trace altogether (checked).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.cli import run_flatkd, run_flatkd_processes

from flatkd.landscape.surfaces.loss_surface import load_surface
from flatkd.runs.rundir import RunDir

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "8",
         "--epochs", "1", "--ic-epochs", "1"]  # fmt: skip
# 8 clips per subset (4 per process), two subsets; the 3-point line and 3x3 plane exercise the
# surface losses, 2 ascent steps the sharpness gradients
RANK = ["rank-modalities", "--quick", "--samples", "8", "--batch-size", "8", "--subsets", "2", "--slq-steps", "6",
        "--trace-probes", "3", "--tol", "1e-3", "--plane-steps", "3", "--line-steps", "3", "--sharpness-steps", "2",
        "--device", "cpu"]  # fmt: skip
COMPARED = ["loss", "accuracy", "top_eigenvalue", "trace", "adaptive_top_eigenvalue", "adaptive_trace",
            "gradient_norm", "quadratic_decrease", "epsilon_sharpness", "adaptive_epsilon_sharpness",
            "adaptive_rho_sharpness"]  # fmt: skip


@pytest.mark.slow
def test_rank_modalities_on_two_processes_equals_one(dataset: Path, tmp_path: Path) -> None:
    trained = tmp_path / "trained"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "iframe", "--modality", "mv", "--run", str(trained), *TRAIN)
    assert result.exit_code == 0, result.output
    runs = {n: RunDir(shutil.copytree(trained, tmp_path / f"p{n}")) for n in (1, 2)}
    outputs = {n: run_flatkd_processes(n, *RANK, "--run", str(run.path)) for n, run in runs.items()}

    one, two = (pd.read_csv(runs[n].flatness_path).sort_values(["modality", "subset"]) for n in (1, 2))
    assert len(one) == len(two) == 4 and list(one["clips"]) == list(two["clips"]) == [8] * 4
    assert list(one["hvps"]) == list(two["hvps"])
    for column in COMPARED:
        a, b = one[column].to_numpy(float), two[column].to_numpy(float)
        # the ascent of the sharpness measures re-uses its own float32 gradients step after step,
        # so the summation order of the all-reduce shows up a little more there (seen: 1.2e-4)
        rtol = 1e-3 if column.endswith("sharpness") else 1e-4
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6 * abs(a[np.isfinite(a)]).max(), err_msg=column)
    for name in ("line", "plane"):
        a, b = (load_surface(runs[n].flatness_store("mv", 3, 0) / f"{name}.safetensors") for n in (1, 2))
        assert abs(a.loss - b.loss).max() <= 1e-5 * abs(a.loss).max(), (name, a.loss, b.loss)
    chains = [json.loads(runs[n].chain_path.read_text()) for n in (1, 2)]
    for key in ("chain", "measured_chain", "flattest_first", "source"):
        assert chains[0][key] == chains[1][key], key
    assert outputs[2].count("flattest -> sharpest") == 1  # rank 0 alone reports

    half = RunDir(shutil.copytree(trained, tmp_path / "half"))  # the tolerance is meaningful
    run_flatkd_processes(1, *RANK, "--samples", "4", "--batch-size", "4", "--run", str(half.path))
    traces = pd.read_csv(half.flatness_path).sort_values(["modality", "subset"])["trace"].to_numpy(float)
    assert abs(traces - one["trace"].to_numpy(float)).max() > 100 * 1e-4 * abs(one["trace"]).max()
