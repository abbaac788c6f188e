"""Ranking modality networks by flatness: the pure ranking rules, and ``flatkd rank-modalities``
end to end on networks that ``flatkd train`` trained on a tiny PyAV-encoded synthetic set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from flatkd.cli import cli
from flatkd.cli.landscape import flatness_settings
from flatkd.data.cache import build_cache, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.landscape import FlatnessSettings, LandscapeInputError
from flatkd.landscape.ranking import FlatnessRecord, rank_modalities
from flatkd.runs.chain import read_chain
from flatkd.runs.rundir import RunDir


def record(modality: str, trace: float, stderr: float, top: float, increase: float | None = 0.1) -> FlatnessRecord:
    """A record whose surface metrics tie (ties never count as disagreement)."""
    return FlatnessRecord(modality, 3, 1000, 0.5, 0.9, top, 0.01, trace, stderr, increase, 1.0, 70)


def test_ranking_orders_by_the_primary_metric_and_warns() -> None:
    records = [record("mv", 90.0, 1.0, 9.0), record("iframe", 10.0, 1.0, 1.0), record("residual", 50.0, 1.0, 5.0)]
    ranking = rank_modalities(records)
    assert ranking.flattest_first == ("iframe", "residual", "mv") and ranking.chain.order == ("mv", "residual", "iframe")
    assert ranking.scores == {"iframe": 10.0, "residual": 50.0, "mv": 90.0} and ranking.warnings == ()

    close = [dataclasses.replace(records[0], trace=52.0), records[1], records[2]]
    (warning,) = rank_modalities(close).warnings
    assert warning.startswith("trace of residual (50 +- 2) and mv (52 +- 2) overlap")

    flipped = [dataclasses.replace(records[0], top_eigenvalue=0.5), records[1], records[2]]
    assert rank_modalities(flipped).warnings == (
        "top_eigenvalue orders them mv < iframe < residual, unlike trace (iframe < residual < mv)",
    )
    assert rank_modalities(flipped, "top_eigenvalue").flattest_first == ("mv", "iframe", "residual")
    assert rank_modalities(records, "trace_per_parameter").flattest_first == ("iframe", "residual", "mv")


def test_ranking_rejects_what_it_cannot_rank() -> None:
    one = [record("mv", 1.0, 0.1, 1.0)]
    with pytest.raises(LandscapeInputError, match="at least two"):
        rank_modalities(one)
    with pytest.raises(LandscapeInputError, match="one record per modality"):
        rank_modalities(one * 2)
    with pytest.raises(LandscapeInputError, match="not computed for every modality"):
        rank_modalities([record("mv", 1, 0.1, 1, None), record("iframe", 2, 0.1, 2)], "mean_loss_increase")
    with pytest.raises(LandscapeInputError, match="unknown flatness metric"):
        rank_modalities(one, "sharpness")


def test_quick_settings_yield_to_explicit_options() -> None:
    assert flatness_settings(False) == FlatnessSettings() and flatness_settings(True) == FlatnessSettings.quick()
    given = flatness_settings(True, samples=None, slq_runs=2, trace_probes=0, surfaces=False)
    assert given == dataclasses.replace(FlatnessSettings.quick(), runs=2, probes=0, surfaces=False)
    quick, full = FlatnessSettings.quick(), FlatnessSettings()
    work = [s.samples * (s.steps * s.runs + s.probes) for s in (quick, full)]  # clips x HVPs (run 1 at `steps`)
    trace_samples = [s.runs - 1 + s.probes for s in (quick, full)]
    assert work[0] <= work[1] / 4 and trace_samples[0] >= trace_samples[1]  # what --help promises


TINY = SynthSettings(classes=4, clips_per_class=8, clips_per_group=2, frames=26, width=64, height=48, seed=3)
FAST = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4",
        "--epochs", "1", "--ic-epochs", "1"]  # fmt: skip
RANK = ["--quick", "--samples", "4", "--batch-size", "4", "--slq-steps", "3", "--trace-probes", "2", "--tol", "1e-2",
        "--plane-steps", "3", "--line-steps", "3"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(root, TINY, jobs=1)
    build_cache(list_videos(root), default_cache_dir(root), jobs=1)
    run = tmp_path_factory.mktemp("runs") / "r1"
    for modality in ("iframe", "mv"):
        arguments = ["train", "--data", str(root), "--modality", modality, "--run", str(run), *FAST]
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 0, result.output
    return run


def test_rank_modalities_writes_table_chain_and_figures_and_resumes(trained: Path) -> None:
    result = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), *RANK])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(trained / "flatness.csv")
    assert sorted(table["modality"]) == ["iframe", "mv"] and (table["exit"] == 3).all()
    assert (table["trace_stderr"] > 0).all() and table["epsilon_sharpness"].notna().all()
    settings = RunDir(trained).read_config()["landscape"]  # --quick's, where no option was given
    assert (settings["runs"], settings["sharpness_steps"], settings["samples"], settings["steps"]) == (1, 5, 4, 3)
    chain = read_chain(RunDir(trained))
    flattest = table.sort_values("trace")["modality"].tolist()
    assert chain.order == tuple(reversed(flattest)) and chain.metric == "trace"
    assert f"flattest -> sharpest by trace: {flattest[0]}" in result.output
    for figure in ("eigen_density.png", "surfaces.png"):
        assert (trained / "figures" / figure).stat().st_size > 0
    stored = trained / "flatness" / "mv.exit3" / "result.json"
    first = stored.stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), *RANK])
    assert again.exit_code == 0 and stored.stat().st_mtime_ns == first  # reused, not recomputed
    assert pd.read_csv(trained / "flatness.csv").equals(table)


def test_rank_modalities_needs_two_trained_networks(trained: Path) -> None:
    result = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), "--modality", "mv"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("flatkd: error: ") and "ranking needs two or more" in result.output
