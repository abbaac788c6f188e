"""Method comparisons across training seeds (``flatkd report --seed-run``): the summary against
a hand computation, and the report section on copies of the tiny demo run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.demo import DemoRun

from flatkd.cli import cli
from flatkd.runs.rundir import RunDir
from flatkd.runs.seeds import RUN_COLUMNS, across_runs, run_comparisons


def _row(run: str, difference: float, low: float, high: float) -> dict[str, object]:
    return {"family": "IC methods", "modality": "mv", "exit": 0, "a": "pkd", "b": "ce", "run": run,
            "accuracy_a": 50 + difference, "accuracy_b": 50.0, "difference": difference, "ci_low": low,
            "ci_high": high, "mcnemar_p": 0.5}  # fmt: skip


def test_across_runs_is_the_t_interval_of_the_per_run_differences() -> None:
    per_run = pd.DataFrame([_row("s0", 2.0, 0.5, 3.5), _row("s1", 4.0, -1.0, 9.0), _row("s2", 6.0, 1.0, 11.0)])
    (summary,) = across_runs(per_run[RUN_COLUMNS]).itertuples(index=False)
    half = 4.302653 * 2.0 / 3**0.5  # t(0.975, 2) * sd / sqrt(3), sd of (2, 4, 6) = 2
    assert (summary.runs, summary.difference, summary.sd) == (3, pytest.approx(4.0), pytest.approx(2.0))
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(4 - half, abs=1e-5), pytest.approx(4 + half, abs=1e-5))
    assert (summary.above, summary.below, summary.accuracy_a) == (2, 0, pytest.approx(54.0))


def test_report_across_seeds_lists_every_comparison_of_the_runs(demo_run: DemoRun, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(demo_run.run, tmp_path / "seed1"))
    own = run_comparisons(RunDir(demo_run.run))
    assert {"IC methods", "WISE"} <= set(own["family"]) and own["difference"].notna().all()
    out = tmp_path / "report.md"
    result = CliRunner().invoke(cli, ["report", "--run", str(demo_run.run), "--seed-run", str(copy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    section = out.read_text().split("## Across training seeds")[1]
    for row in own.itertuples(index=False):  # two identical runs: the same difference, zero spread
        assert f"| {row.a} | {row.b} | 2 |" in section and f"{row.difference:+.1f} [{row.difference:+.1f}," in section
