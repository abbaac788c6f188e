"""``flatkd distill`` and ``flatkd wise`` on tiny networks trained once per module on the tiny
synthetic set: the PKD teacher of every epoch, kill-and-resume, generative KD, the errors that
name the command to run first, and WISE's outputs checked against a recomputation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.interrupt import Interrupt, kill_after

from flatkd.distill import load_wise
from flatkd.fileio import load_tensors, save_tensors
from flatkd.landscape.chain import Chain
from flatkd.runs.chain import write_chain
from flatkd.runs.data_source import open_split_data, resolve_data_source
from flatkd.runs.distill import distill
from flatkd.runs.distill_settings import resolve_settings
from flatkd.runs.methods import get_method
from flatkd.runs.networks import load_stage_network
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import load_train_config
from flatkd.train import exit_accuracy

TRAIN = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0", "--batch-size", "4"]
CHAIN = ["residual", "iframe", "mv"]  # sharpest first; not the paper's order on purpose
TIMING = ["seconds", "clips_per_s", "data_wait"]


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three networks, one backbone epoch and three IC (ic-ce) epochs each."""
    run = tmp_path_factory.mktemp("distill") / "trained"
    modalities = ["--modality", "iframe", "--modality", "mv", "--modality", "residual"]
    result = run_flatkd("train", "--data", str(dataset), *modalities, "--run", str(run), *TRAIN, "--epochs", "1", "--ic-epochs", "3")
    assert result.exit_code == 0, result.output
    return run


def _copy(run: Path, to: Path, chain: bool = True) -> Path:
    shutil.copytree(run, to)
    if chain:
        write_chain(RunDir(to), Chain(tuple(CHAIN)))
    return to


@pytest.fixture(scope="module")
def distilled(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = _copy(trained, tmp_path_factory.mktemp("distill") / "pkd")
    result = run_flatkd("distill", "--run", str(run), "--method", "pkd")
    assert result.exit_code == 0, result.output
    return run


def _same_files(a: Path, b: Path, pattern: str) -> None:
    names = sorted(p.relative_to(a) for p in a.glob(pattern))
    assert names and names == sorted(p.relative_to(b) for p in b.glob(pattern))
    for name in names:
        x, y = load_tensors(a / name), load_tensors(b / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


def _stage_metrics(run: Path, stage: str) -> pd.DataFrame:
    table = RunDir(run).read_metrics()
    return table[table["stage"] == stage].drop(columns=TIMING).dropna(axis=1, how="all").reset_index(drop=True)


def test_pkd_teacher_of_every_epoch_follows_chain_json(distilled: Path) -> None:
    run = RunDir(distilled)
    table = _stage_metrics(distilled, "ic-pkd")
    teachers = {m: list(rows["teacher"]) for m, rows in table.groupby("modality")}
    # three epochs, one per phase, visiting residual -> iframe -> mv; a network's own slot is "own"
    assert teachers == {
        "iframe": ["residual", "own", "mv"],
        "mv": ["residual", "iframe", "own"],
        "residual": ["own", "iframe", "mv"],
    }
    for modality in ("iframe", "mv", "residual"):
        start = load_tensors(run.checkpoint_path("backbone", modality))
        ics = load_tensors(run.checkpoint_path("ic-pkd", modality))
        assert all(torch.equal(start[k], ics[k]) for k in start if not k.startswith("ics."))  # frozen backbone
        assert not torch.equal(start["ics.0.fc.weight"], ics["ics.0.fc.weight"])
        logits, labels = run.load_logits("ic-pkd", modality, "test")
        assert logits.shape == (8, 4, 4) and labels.shape == (8,)
    results = pd.read_csv(distilled / "distill.csv")
    assert set(results["method"]) == {"ce", "pkd"} and len(results) == 2 * 3 * 4 * 2
    assert "| modality | exit | ce | pkd |" in (distilled / "distill.md").read_text()


def test_resumed_distill_equals_an_uninterrupted_one(trained: Path, distilled: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "resumed")
    method = get_method("pkd")
    configs = {m: resolve_settings(RunDir(run), method, m, load_train_config(RunDir(run), m), resume=False) for m in CHAIN}
    with pytest.raises(Interrupt):
        distill(RunDir(run), method, configs, on_epoch_end=kill_after("ic-pkd", 2))
    assert_one_line_error(run_flatkd("distill", "--run", str(run), "--method", "pkd"), "pass --resume")
    result = run_flatkd("distill", "--run", str(run), "--method", "pkd", "--resume")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(_stage_metrics(run, "ic-pkd"), _stage_metrics(distilled, "ic-pkd"), check_exact=True)
    _same_files(run, distilled, "*/ic-pkd/*.safetensors")
    again = run_flatkd("distill", "--run", str(run), "--method", "pkd", "--resume")
    assert again.exit_code == 0 and again.output.count("reused") == 3


def test_generative_kd_resumes_exactly_and_pkd_builds_on_its_backbones(trained: Path, tmp_path: Path) -> None:
    settings = tmp_path / "genkd.yaml"
    settings.write_text(yaml.safe_dump({"genkd": {"epochs": 2, "teacher_epochs": 1}, "ics": {"epochs": 1}}))
    whole = _copy(trained, tmp_path / "whole")
    result = run_flatkd("distill", "--run", str(whole), "--method", "genkd", "--config", str(settings))
    assert result.exit_code == 0, result.output
    resumed = _copy(trained, tmp_path / "resumed")
    method = get_method("genkd")
    configs = {
        m: resolve_settings(RunDir(resumed), method, m, load_train_config(RunDir(resumed), m), resume=False, config_path=settings)
        for m in ("mv", "residual")
    }
    with pytest.raises(Interrupt):
        distill(RunDir(resumed), method, configs, on_epoch_end=kill_after("genkd", 1))
    result = run_flatkd("distill", "--run", str(resumed), "--method", "genkd", "--config", str(settings), "--resume")
    assert result.exit_code == 0, result.output
    for stage in ("genkd-teacher", "genkd", "ic-genkd"):
        pd.testing.assert_frame_equal(_stage_metrics(resumed, stage), _stage_metrics(whole, stage), check_exact=True)
    _same_files(resumed, whole, "*/*genkd*/*.safetensors")

    run = RunDir(whole)
    assert not run.checkpoint_path("ic-genkd", "iframe").exists()  # the teacher keeps its ic-ce ICs
    start = load_tensors(run.checkpoint_path("backbone", "mv"))
    tuned = load_tensors(run.checkpoint_path("genkd", "mv"))
    assert not torch.equal(start["backbone.layer4.0.conv1.weight"], tuned["backbone.layer4.0.conv1.weight"])
    assert any(k.startswith("final_transform.") for k in tuned)
    # the saved logits come back from the saved network, attention reweighting included
    net = load_stage_network(run, "mv", "ic-genkd")
    data = _test_clips(run, "mv")
    logits, labels = run.load_logits("ic-genkd", "mv", "test")
    with torch.no_grad():
        again = torch.stack(net(torch.stack([clip for clip, _ in data])), dim=1)
    torch.testing.assert_close(again, logits, rtol=1e-5, atol=1e-5)
    assert labels.tolist() == [label for _, label in data]

    result = run_flatkd(
        "distill", "--run", str(whole), "--method", "pkd+genkd", "--config", str(settings), "--modality", "mv", "--epochs", "3"
    )
    assert result.exit_code == 0, result.output
    assert "genkd           residual  reused" in result.output  # mv's teacher in phase 0
    assert _stage_metrics(whole, "ic-pkd+genkd")["teacher"].tolist() == ["residual", "iframe", "own"]


def _test_clips(run: RunDir, modality: str) -> list[tuple[torch.Tensor, int]]:
    test = open_split_data(resolve_data_source(run, None), load_train_config(run, modality), (modality,)).test
    return [(inputs[modality], label) for inputs, label in (test[i] for i in range(len(test)))]


def test_missing_prerequisites_and_bad_requests_give_one_line_errors(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "r", chain=False)
    before = (run / "config.yaml").read_text()
    assert_one_line_error(
        run_flatkd("distill", "--run", str(run), "--method", "pkd"), f"run `flatkd rank-modalities --run {run}` first"
    )
    write_chain(RunDir(run), Chain(tuple(CHAIN)))
    (run / "checkpoints" / "ic-ce" / "residual.safetensors").unlink()
    assert_one_line_error(
        run_flatkd("distill", "--run", str(run), "--method", "pkd", "--modality", "mv"),
        f"run `flatkd train --run {run} --modality residual` first",
    )
    assert_one_line_error(
        run_flatkd("distill", "--run", str(run), "--method", "ce", "--epochs", "5"), "ics.epochs", "flatkd train --ic-epochs"
    )
    assert_one_line_error(
        run_flatkd("distill", "--run", str(run), "--method", "genkd", "--modality", "iframe"), "does not train the iframe"
    )
    assert_one_line_error(
        run_flatkd("wise", "--run", str(run), "--method", "kd"), f"run `flatkd distill --run {run} --method kd` first"
    )
    assert_one_line_error(
        run_flatkd("distill", "--run", str(tmp_path / "none"), "--method", "kd"), "run `flatkd train --run"
    )
    assert (run / "config.yaml").read_text() == before  # nothing recorded, nothing trained
    assert not (run / "checkpoints" / "ic-pkd").exists() and not (run / "checkpoints" / "ic-kd").exists()


def test_ce_reuses_the_ic_ce_stage_of_flatkd_train(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "r", chain=False)
    result = run_flatkd("distill", "--run", str(run), "--method", "ce")
    assert result.exit_code == 0, result.output
    assert result.output.count("reused") == 3
    _same_files(run, trained, "*/ic-ce/*.safetensors")
    assert list(pd.read_csv(run / "distill.csv")["method"].unique()) == ["ce"]


def test_wise_cli_fits_non_negative_weights_and_reports_the_cascade(distilled: Path, tmp_path: Path) -> None:
    run_path = _copy(distilled, tmp_path / "r", chain=False)
    run = RunDir(run_path)
    result = run_flatkd("wise", "--run", str(run_path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("WISE pkd (train view): ")
    wise = load_wise(run.wise_path)["pkd"]
    assert all(w >= 0 for row in wise.weights for w in row)
    assert wise.order == tuple(f"{m}:{i}" for m in ("residual", "mv", "iframe") for i in range(4))
    # tau -> 1: every clip runs the whole cascade; recompute its prediction from the saved logits
    at_one = next(p for p in wise.curve if p.tau == 1.0)
    logits = {m: run.load_logits("ic-pkd", m, "test") for m in ("residual", "mv", "iframe")}
    stacked = torch.cat([logits[m][0] for m in ("residual", "mv", "iframe")], dim=1).double()
    z = torch.einsum("j,njk->nk", torch.tensor(wise.weights[-1], dtype=torch.float64), stacked)
    labels = logits["mv"][1]
    assert at_one.accuracy == wise.step_accuracy[-1] == pytest.approx((z.argmax(-1) == labels).double().mean().item())
    macs = json.loads(run.macs_path.read_text())
    full = sum(c["backbone"][-1] + sum(c["head"]) for c in macs.values())
    assert at_one.macs == wise.step_macs[-1] == full and at_one.exit_fractions[-1] == 1.0
    assert wise.exit_accuracy[3] == pytest.approx(exit_accuracy(*logits["residual"])[3].item())

    result = run_flatkd("wise", "--run", str(run_path), "--no-scaling", "--order", "iframe,mv:0")
    assert result.exit_code == 0, result.output
    uniform = load_wise(run.wise_path)["pkd-no-scaling"]
    assert uniform.order == ("iframe:0", "iframe:1", "iframe:2", "iframe:3", "mv:0")
    assert all(w == 1.0 for row in uniform.weights for w in row)
    curves = pd.read_csv(run_path / "wise.csv")
    assert set(curves["variant"]) == {"pkd", "pkd-no-scaling"} and curves["chosen"].sum() == 2
    assert (run.figures_dir / "wise_pkd.png").is_file()
    table = (run_path / "distill.md").read_text()
    assert "| pkd | 0.999999 |" in table and "| pkd-no-scaling | 0.999999 |" in table
    assert run.read_config()["wise"]["pkd-no-scaling"]["order"] == list(uniform.order)


def test_pkd_runs_with_fewer_ic_epochs_than_teachers_and_takes_phase_starts(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _copy(trained, tmp_path / "r")
    pkd = ("distill", "--run", str(run), "--method", "pkd", "--modality", "mv", "--epochs", "2")
    before = (run / "config.yaml").read_text()
    for starts, fragment in [
        ("0,1,2", "pkd.phase_starts [0, 1, 2]: the last phase starts at epoch 2 but the IC stage has only 2 epochs"),
        ("0,1", "pkd.phase_starts has 2 entries but the chain has 3 teachers"),
        ("0,one,2", "--phase-starts '0,one,2': expected epochs separated by commas"),
    ]:
        assert_one_line_error(run_flatkd(*pkd, "--phase-starts", starts), fragment)
    assert_one_line_error(
        run_flatkd("distill", "--run", str(run), "--method", "kd", "--phase-starts", "0,1"),
        "kd has no teacher phases; it applies to pkd, pkd-paper, pkd-reversed, pkd+genkd",
    )
    assert (run / "config.yaml").read_text() == before

    short = run_flatkd(*pkd)
    assert short.exit_code == 0, short.output
    assert "pkd mv: 2 IC epochs for 3 teachers: residual (epoch 1) -> own (epoch 2), left out: iframe" in caplog.text
    assert _stage_metrics(run, "ic-pkd")["teacher"].tolist() == ["residual", "own"]

    # its budget is not ce's (3 IC epochs): said once by distill, and by the report beside the numbers
    assert "pkd's IC budget differs from the ce baseline's (ce -> pkd: mv epochs: 3 -> 2)" in caplog.text
    report = run_flatkd("report", "--run", str(run))
    assert report.exit_code == 0, report.output
    section = (run / "report.md").read_text().split("\n## Distillation\n", 1)[1].split("\n## ", 1)[0]
    assert "- mv ce: 3 epochs, adam lr 0.002, batch 4\n" in section
    assert "- mv pkd: 2 epochs, adam lr 0.002, batch 4; differs from ce (epochs: 3 -> 2): not an equal-budget" in section
    caplog.clear()
    equal = run_flatkd("distill", "--run", str(run), "--method", "kd", "--modality", "mv")
    assert equal.exit_code == 0, equal.output
    assert "budget" not in caplog.text

    longer = _copy(trained, tmp_path / "longer")
    result = run_flatkd("distill", "--run", str(longer), "--method", "pkd", "--modality", "mv", "--epochs", "4",
                        "--phase-starts", "0,1,3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _stage_metrics(longer, "ic-pkd")["teacher"].tolist() == ["residual", "iframe", "iframe", "own"]
    assert RunDir(longer).read_config()["distill"]["pkd"]["mv"]["pkd"]["phase_starts"] == [0, 1, 3]


def test_a_failed_distill_records_nothing_and_a_busy_one_is_refused(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "failed")
    before = RunDir(run).read_config()
    failed = run_flatkd("distill", "--run", str(run), "--method", "pkd", "--set", "ics.optim.lr=1e9")
    assert_one_line_error(failed, "training diverged")
    assert RunDir(run).read_config() == before, "a distillation that committed nothing leaves no settings"
    with RunDir(run).hold("distill.pkd"):
        busy = run_flatkd("distill", "--run", str(run), "--method", "pkd")
    assert_one_line_error(busy, "is in use", "distill.pkd is running there")
    assert RunDir(run).read_config() == before


def test_a_failed_ranking_records_nothing_and_a_busy_one_is_refused(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "ranking", chain=False)
    before = RunDir(run).read_config()
    with RunDir(run).hold("rank-modalities"):
        busy = run_flatkd("rank-modalities", "--run", str(run), "--quick")
    assert_one_line_error(busy, "is in use", "rank-modalities is running there")
    path = RunDir(run).checkpoint_path("ic-ce", "iframe")
    weights = load_tensors(path)
    name = next(k for k, t in weights.items() if t.is_floating_point() and t.numel() > 1)
    weights[name][0] = float("nan")
    save_tensors(path, weights)
    failed = run_flatkd("rank-modalities", "--run", str(run), "--quick")
    assert_one_line_error(failed, "non-finite weights")
    assert RunDir(run).read_config() == before, "a ranking that wrote no results leaves no settings"


def test_a_resume_with_changed_flags_names_every_difference(distilled: Path, tmp_path: Path) -> None:
    run = _copy(distilled, tmp_path / "changed", chain=False)
    before = RunDir(run).read_config()
    refused = run_flatkd("distill", "--run", str(run), "--method", "pkd", "--resume", "--epochs", "7", "--set", "ics.optim.lr=0.5")
    assert_one_line_error(refused, "distils", "with pkd with other settings (", "ics.epochs: 3 -> 7", "ics.optim.lr: ", "-> 0.5")
    assert RunDir(run).read_config() == before
