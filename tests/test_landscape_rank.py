"""Ranking modality networks by flatness: the pure ranking rules, and ``flatkd rank-modalities``
end to end on networks that ``flatkd train`` trained on a tiny PyAV-encoded synthetic set."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from flatkd.cli import cli
from flatkd.cli.landscape import flatness_settings
from flatkd.data.cache import build_cache, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.landscape import FlatnessSettings, LandscapeInputError
from flatkd.landscape.chain import PAPER_CHAIN, chain_from_json
from flatkd.landscape.ranking import FlatnessRecord, convergence_problems, rank_modalities, summarise
from flatkd.stats import chance_interval, student_t_quantile
from flatkd.runs.chain import read_chain
from flatkd.runs.rundir import RunDir


def record(modality: str, adaptive: float, subset: int = 0, run: str = "r", **changes: object) -> FlatnessRecord:
    """A converged-looking record whose other metrics order the modalities like ``adaptive``."""
    values = {
        "modality": modality, "exit": 3, "parameters": 1000, "loss": 0.5, "accuracy": 0.9,
        "top_eigenvalue": 10 * adaptive, "top_eigenvalue_bound": 1e-4, "trace": 100 * adaptive,
        "trace_stderr": 1.0, "adaptive_top_eigenvalue": adaptive / 2, "adaptive_trace": adaptive,
        "adaptive_trace_stderr": 0.1, "mean_loss_increase": 0.1, "epsilon_sharpness": adaptive,
        "adaptive_epsilon_sharpness": adaptive, "adaptive_rho_sharpness": adaptive, "classes": 10,
        "gradient_norm": 0.01, "quadratic_decrease": 1e-4, "hvps": 70, "clips": 16, "subset": subset, "run": run,
    }  # fmt: skip
    return FlatnessRecord(**{**values, **changes})  # type: ignore[arg-type]


def subsets(modality: str, values: list[float], run: str = "r", **changes: object) -> list[FlatnessRecord]:
    return [record(modality, v, subset=k, run=run, **changes) for k, v in enumerate(values)]


SEPARATED = [*subsets("mv", [9.0, 9.2, 8.8]), *subsets("iframe", [1.0, 1.1, 0.9]), *subsets("residual", [5.0, 5.2, 4.8])]


def test_separated_intervals_give_the_measured_chain() -> None:
    ranking = rank_modalities(SEPARATED)
    assert ranking.flattest_first == ("iframe", "residual", "mv") and ranking.resolved
    assert ranking.scores == pytest.approx({"iframe": 1.0, "residual": 5.0, "mv": 9.0})
    interval = ranking.summaries["adaptive_trace"]["mv"].interval
    half = student_t_quantile(0.975, 2) * 0.2 / 3**0.5  # sd of (9.0, 9.2, 8.8) is 0.2
    assert interval is not None and (interval.low, interval.high) == pytest.approx((9 - half, 9 + half))
    chain = ranking.chain
    assert chain.order == ("mv", "residual", "iframe") and chain.source == "measured" and ranking.warnings == ()


def test_an_unresolved_pair_falls_back_to_the_papers_order_and_says_so() -> None:
    close = [*subsets("iframe", [4.0, 6.0, 5.0]), *subsets("mv", [5.5, 4.5, 6.5]), *subsets("residual", [1.0, 1.1, 0.9])]
    ranking = rank_modalities(close)
    assert ranking.flattest_first == ("residual", "iframe", "mv") and ranking.unresolved == (("iframe", "mv"),)
    chain = ranking.chain
    assert chain.order == PAPER_CHAIN and chain.source == "paper" and chain.measured == ("mv", "iframe", "residual")
    assert "iframe vs mv not resolved by adaptive_trace" in chain.reason
    assert any(w.startswith("adaptive_trace does not resolve iframe vs mv") for w in ranking.warnings)
    restored = chain_from_json(chain.to_json())
    assert restored == chain


def test_a_network_at_chance_is_flagged_and_not_ranked() -> None:
    at_chance = [*SEPARATED[3:], *subsets("mv", [9.0, 9.2, 8.8], accuracy=0.125)]
    ranking = rank_modalities(at_chance)
    assert ranking.unresolved == () and not ranking.resolved and ranking.chain.source == "paper"
    (why,) = ranking.unmeasurable["mv"]
    assert why.startswith("accuracy near chance on 3 of 3 subsets") and "mv not measurable" in ranking.chain.reason
    steep = subsets("mv", [9.0, 9.2, 8.8], quadratic_decrease=0.2)  # a step would lower the loss 0.5 by 40%
    assert convergence_problems(steep)[0].startswith("not at a minimum on 3 of 3 subsets")


def test_seed_runs_give_the_interval_and_subsets_the_within_run_spread() -> None:
    seeds = [*subsets("mv", [9.0, 9.4], run="s0"), *subsets("mv", [7.0, 7.4], run="s1"), *subsets("mv", [8.0, 8.4], run="s2")]
    summary = summarise(seeds, "adaptive_trace")
    assert summary is not None and (summary.spread_over, summary.runs, summary.subsets) == ("runs", 3, 2)
    assert summary.mean == pytest.approx(8.2) and summary.run_sd == pytest.approx(1.0)
    assert summary.subset_sd == pytest.approx(0.08**0.5)  # each run's pair differs by 0.4
    single = summarise([record("mv", 3.0)], "adaptive_trace")
    assert single is not None and single.interval is None and single.spread_over == "none"
    only_first = summarise(subsets("mv", [1.0, 2.0], mean_loss_increase=None), "mean_loss_increase")
    assert only_first is None


def test_other_metrics_that_disagree_are_named() -> None:
    flipped = [*SEPARATED[:3], *subsets("iframe", [1.0, 1.1, 0.9], top_eigenvalue=1000.0), *SEPARATED[6:]]
    assert rank_modalities(flipped).warnings == (
        "top_eigenvalue orders them residual < mv < iframe, unlike adaptive_trace (iframe < residual < mv)",
    )
    assert rank_modalities(flipped, "top_eigenvalue").flattest_first == ("residual", "mv", "iframe")


def test_ranking_rejects_what_it_cannot_rank() -> None:
    one = [record("mv", 1.0)]
    with pytest.raises(LandscapeInputError, match="at least two"):
        rank_modalities(one)
    with pytest.raises(LandscapeInputError, match="one exit per modality"):
        rank_modalities([*one, record("mv", 1.0, exit=2), record("iframe", 2.0)])
    with pytest.raises(LandscapeInputError, match="not computed for every modality"):
        rank_modalities([record("mv", 1, mean_loss_increase=None), record("iframe", 2)], "mean_loss_increase")
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
    assert sorted(table["modality"]) == ["iframe"] * 3 + ["mv"] * 3 and (table["exit"] == 3).all()
    assert sorted(table["subset"]) == [0, 0, 1, 1, 2, 2] and (table["run"] == "r1").all() and (table["clips"] == 4).all()
    assert (table["trace_stderr"] > 0).all() and (table["adaptive_trace_stderr"] > 0).all()
    assert table["adaptive_rho_sharpness"].notna().all() and table["mean_loss_increase"].notna().sum() == 2
    settings = RunDir(trained).read_config()["landscape"]  # --quick's, where no option was given
    assert (settings["runs"], settings["sharpness_steps"], settings["samples"], settings["subsets"]) == (1, 5, 4, 3)
    summary = pd.read_csv(trained / "flatness_summary.csv")
    adaptive = summary[summary["metric"] == "adaptive_trace"].set_index("modality")
    assert (adaptive["spread_over"] == "subsets").all() and (adaptive["ci_low"] < adaptive["ci_high"]).all()
    means = table.groupby("modality")["adaptive_trace"].mean()
    assert adaptive["mean"].to_dict() == pytest.approx(means.to_dict())
    chain = read_chain(RunDir(trained))
    measured = tuple(means.sort_values(ascending=False).index)
    assert chain.measured == measured and chain.metric == "adaptive_trace"
    assert chain.order == (measured if chain.source == "measured" else ("mv", "iframe")) and chain.reason
    assert f"flattest -> sharpest by adaptive_trace: {measured[-1]}" in result.output
    for figure in ("eigen_density.png", "surfaces.png"):
        assert (trained / "figures" / figure).stat().st_size > 0
    stored = trained / "flatness" / "mv.exit3" / "subset1" / "result.json"
    first = stored.stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), *RANK])
    assert again.exit_code == 0 and stored.stat().st_mtime_ns == first  # reused, not recomputed
    assert pd.read_csv(trained / "flatness.csv").equals(table)


def test_seed_runs_are_measured_and_give_the_interval(trained: Path, tmp_path: Path) -> None:
    """A second run (here a copy, with its own store) is measured too; the interval is over runs."""
    other = tmp_path / "r2"
    shutil.copytree(trained, other, ignore=shutil.ignore_patterns("flatness*", "chain.json"))
    result = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), "--seed-run", str(other), *RANK])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(trained / "flatness.csv")
    assert sorted(set(table["run"])) == ["r1", "r2"] and (other / "flatness" / "mv.exit3" / "subset2").is_dir()
    summary = pd.read_csv(trained / "flatness_summary.csv")
    assert (summary[summary["metric"] == "adaptive_trace"]["spread_over"] == "runs").all()
    missing = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), "--seed-run", str(tmp_path), *RANK])
    assert missing.exit_code == 2 and "every --seed-run needs" in missing.output


def test_rank_modalities_needs_two_trained_networks(trained: Path) -> None:
    result = CliRunner().invoke(cli, ["rank-modalities", "--run", str(trained), "--modality", "mv"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("flatkd: error: ") and "ranking needs two or more" in result.output


def test_rank_modalities_warns_about_a_network_at_chance(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "r1"
    shutil.copytree(trained, copy)
    run = RunDir(copy)
    logits, labels = run.load_logits("ic-ce", "mv", "test")
    constant = torch.zeros_like(logits)
    constant[..., 1] = 1.0  # mv: one class for every test clip
    run.save_logits("ic-ce", "mv", "test", constant, labels)
    perfect = torch.nn.functional.one_hot(labels, logits.shape[-1]).float()[:, None].expand_as(logits)
    run.save_logits("ic-ce", "iframe", "test", perfect.contiguous(), labels)
    result = CliRunner().invoke(cli, ["rank-modalities", "--run", str(copy), *RANK])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: the ")]
    name = run.read_config()["data"]["classes"][1]
    right = int((labels == 1).sum())
    assert warned == [
        f"warning: the mv (ic-ce, final exit) network predicts class {name!r} for every one of its {len(labels)} test"
        f" clips; test accuracy {right / len(labels):.1%} ({right}/{len(labels)}) is within the 95% range of chance"
        f" (25.0%: {chance_interval(len(labels), 0.25).low:.1%}-{chance_interval(len(labels), 0.25).high:.1%} on"
        f" {len(labels)} clips)"
    ]
