"""Hostile and careless use of a run directory (issue 17): a refused or failed command changes
nothing in the run, one writer per job (a lock with the holder's PID, taken over from a dead
one), killed runs' temporary files removed, divergence and NaN stopped or refused in one line,
truncated results refused and never rewritten, deterministic checkpoint bytes, YAML 1.2 numbers
and range-checked settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers.cli import assert_one_line_error, run_flatkd

from flatkd.config import from_dict
from flatkd.errors import ConfigError, InputFileError
from flatkd.fileio import load_tensors, save_tensors
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import resolve
from flatkd.runs.wise import expand_order
from flatkd.train import TrainConfig

FAST = ["--set", "input_size=32", "--set", "num_segments=2", "--set", "workers=0",
        "--batch-size", "4", "--epochs", "1", "--ic-epochs", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("hostile-runs") / "r1"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *FAST)
    assert result.exit_code == 0, result.output
    return run


def _copy(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("locks"))
    return copy


def _snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run except the lock files and the log (which records every attempt,
    a refused or failed one too)."""
    return {
        p.relative_to(run).as_posix(): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.parts[len(run.parts)] != "locks" and p.name not in (".lock", "train.log")
    }


# ---- item 3: refused commands change nothing; one writer per job -----------------------------


def test_a_refused_resume_changes_nothing_in_the_run(trained: Path, tmp_path: Path) -> None:
    copy = _copy(trained, tmp_path)
    before = _snapshot(copy)
    refused = run_flatkd("train", "--modality", "mv", "--run", str(copy), "--resume", "--seed", "7", *FAST)
    assert_one_line_error(refused, "seed: 0 -> 7")
    assert _snapshot(copy) == before
    assert RunDir(copy).read_config()["train"]["mv"]["seed"] == 0
    again = run_flatkd("train", "--modality", "mv", "--run", str(copy), "--resume", *FAST)
    assert again.exit_code == 0, again.output


def test_a_failed_modality_leaves_no_section_and_a_failed_first_train_no_config(
    dataset: Path, trained: Path, tmp_path: Path
) -> None:
    copy = _copy(trained, tmp_path)
    before = _snapshot(copy)
    failed = run_flatkd("train", "--modality", "residual", "--run", str(copy), *FAST, "--batch-size", "4000")
    assert_one_line_error(failed, "batch_size 4000 exceeds")
    assert "residual" not in RunDir(copy).read_config()["train"]
    assert _snapshot(copy) == before
    fresh = tmp_path / "fresh"
    first = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(fresh), *FAST, "--batch-size", "4000")
    assert_one_line_error(first, "batch_size 4000 exceeds")
    assert not (fresh / "config.yaml").exists()
    retry = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(fresh), *FAST)
    assert retry.exit_code == 0, retry.output


def test_a_live_holder_blocks_a_second_writer_and_a_dead_ones_lock_is_taken_over(
    trained: Path, tmp_path: Path
) -> None:
    copy = _copy(trained, tmp_path)
    with RunDir(copy).hold("train.mv"):
        busy = run_flatkd("train", "--modality", "mv", "--run", str(copy), "--resume", *FAST)
    assert_one_line_error(busy, "is in use", f"pid {os.getpid()}", "wait for it")
    stale = copy / "locks" / "train.mv.pid"
    stale.write_text("4194999\n")  # a PID no process has; nobody holds the flock
    dead_temp = copy / "checkpoints" / "backbone" / ".mv.p4194999.abcd1234.safetensors"
    live_temp = copy / "checkpoints" / "backbone" / f".mv.p{os.getpid()}.abcd1234.safetensors"
    dead_temp.write_bytes(b"half a checkpoint")
    live_temp.write_bytes(b"someone is writing this")
    taken = run_flatkd("train", "--modality", "mv", "--run", str(copy), "--resume", *FAST)
    assert taken.exit_code == 0, taken.output
    assert not dead_temp.exists(), "a killed run's temporary file is removed by the next run"
    assert live_temp.exists(), "a live process's temporary file is left alone"


# ---- item 4: divergence and NaN ----------------------------------------------------------------


def test_divergence_stops_training_in_one_line(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "diverging"
    result = run_flatkd(
        "train", "--data", str(dataset), "--modality", "mv", "--run", str(run), *FAST,
        "--epochs", "3", "--set", "backbone.optim.lr=1e6",
    )  # fmt: skip
    assert_one_line_error(result, "training diverged", "lower the learning rate")
    assert not RunDir(run).checkpoint_path("ic-ce", "mv").exists(), "nothing after the divergence is trained"
    best = RunDir(run).checkpoint_path("backbone", "mv")
    if best.exists():  # an epoch before the explosion was committed: it is kept and named
        assert str(best) in result.stderr


def test_nan_weights_and_logits_are_refused_naming_the_network_and_the_fix(trained: Path, tmp_path: Path) -> None:
    copy = _copy(trained, tmp_path)
    run = RunDir(copy)
    path = run.checkpoint_path("ic-ce", "mv")
    weights = load_tensors(path)
    name = next(k for k, t in weights.items() if t.is_floating_point() and t.numel() > 1)
    weights[name][0] = float("nan")
    save_tensors(path, weights)
    evaluate = run_flatkd("evaluate", "--run", str(copy))
    assert_one_line_error(evaluate, "the mv network of stage 'ic-ce' has non-finite weights", "flatkd train --modality mv")
    logits_path = run.logits_path("ic-ce", "mv", "val")
    logits = load_tensors(logits_path)
    logits["logits"][0, 0, 0] = float("inf")
    save_tensors(logits_path, logits)
    wise = run_flatkd("wise", "--run", str(copy), "--method", "ce")
    assert_one_line_error(wise, "mv network's logits after stage 'ic-ce' are not finite", "flatkd train --modality mv")


def test_wise_json_with_nan_is_refused_on_write_and_on_read(tmp_path: Path) -> None:
    from flatkd.distill.wise import load_wise

    (tmp_path / "wise.json").write_text('{"pkd": {"weights": [[NaN]]}}\n')
    with pytest.raises(InputFileError, match=r"not a finite number\); move it away"):
        load_wise(tmp_path / "wise.json")


# ---- item 6: artefacts ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["cut-mid-row", "ragged-row", "binary"])
def test_a_damaged_metrics_csv_is_refused_and_never_rewritten(trained: Path, tmp_path: Path, damage: str) -> None:
    copy = _copy(trained, tmp_path)
    metrics = RunDir(copy).metrics_path
    text = metrics.read_bytes()
    damaged = {
        "cut-mid-row": text[: len(text) - 7],
        "ragged-row": text + b"backbone,mv,5\n",
        "binary": b"\xff\xfe" + text,
    }[damage]
    metrics.write_bytes(damaged)
    assert_one_line_error(run_flatkd("report", "--run", str(copy)), "metrics.csv", "move it away")
    assert metrics.read_bytes() == damaged
    with pytest.raises(InputFileError, match="metrics.csv"):
        RunDir(copy).write_metrics("backbone", "mv", [{"epoch": 0}])
    assert metrics.read_bytes() == damaged, "a partial read is never written back"


def test_checkpoint_bytes_are_deterministic_and_files_get_the_umask_mode(tmp_path: Path) -> None:
    from flatkd.train.checkpoint import save_weights

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    meta = {f"key{i}": i for i in range(12)}
    save_weights(tmp_path / "a.safetensors", model, meta)
    save_weights(tmp_path / "b.safetensors", model, dict(reversed(list(meta.items()))))
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    loaded = load_tensors(tmp_path / "a.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_identical_runs_write_identical_checkpoints(trained: Path, dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(again), *FAST)
    assert result.exit_code == 0, result.output
    for stage in ("backbone", "ic-ce"):
        assert RunDir(again).checkpoint_path(stage, "mv").read_bytes() == RunDir(trained).checkpoint_path(stage, "mv").read_bytes()


# ---- item 7: options -------------------------------------------------------------------------


def test_yaml_1_2_numbers_are_accepted_in_set_and_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("backbone:\n  optim:\n    lr: 1e-3\n    eps: 1E-9\n")
    resolved = resolve(TrainConfig, ("train", "mv"), config_path=config, overrides=["ics.optim.lr=5e-4"])
    assert resolved.backbone.optim.lr == 0.001 and resolved.backbone.optim.eps == 1e-9
    assert resolved.ics.optim.lr == 0.0005


@pytest.mark.parametrize(
    "override, message",
    [
        ("backbone.optim.lr=-1", "lr must be > 0"),
        ("backbone.optim.lr=0", "lr must be > 0"),
        ("backbone.optim.lr=.nan", "expected a finite number"),
        ("backbone.optim.lr=.inf", "expected a finite number"),
        ("backbone.optim.weight_decay=-1e-4", "weight_decay must be >= 0"),
        ("backbone.optim.momentum=5", "momentum must be in [0, 1)"),
        ("backbone.optim.momentum=1", "momentum must be in [0, 1)"),
        ("backbone.optim.eps=0", "eps must be > 0"),
        ("ics.schedule.warmup_epochs=-1", "warmup_epochs must be >= 0"),
        ("ics.schedule.gamma=0", "gamma must be in (0, 1]"),
        ("ics.schedule.min_lr_ratio=2", "min_lr_ratio must be in [0, 1]"),
        ("ics.schedule.milestones=[5, 2]", "milestones must be increasing"),
        ("backbone.optim.lr_mult={'a*': -1}", "must be >= 0"),
    ],
)
def test_out_of_range_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(TrainConfig, ("train", "mv"), overrides=[override])
    assert message in str(caught.value)


def test_out_of_range_settings_are_one_line_errors_before_anything_is_written(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    result = run_flatkd("train", "--data", str(dataset), "--modality", "mv", "--run", str(run), "--set", "backbone.optim.lr=-1")
    assert_one_line_error(result, "lr must be > 0")
    assert not run.exists()


@pytest.mark.parametrize(
    "order, message",
    [
        (["mv", "mv"], "appears more than once"),
        (["mv:1", "mv"], "mv:1 appears more than once"),
        (["mv:9"], "is not an exit of a trained network"),
        (["iframe:0"], "is not an exit of a trained network"),
        (["mv:x"], "is not an exit of a trained network"),
        (["flow"], "neither an exit"),
    ],
)
def test_wise_order_is_validated(order: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        expand_order(order, {"mv": 4, "residual": 4})


def test_recorded_settings_round_trip_through_yaml() -> None:
    config = from_dict(TrainConfig, yaml.safe_load(yaml.safe_dump({"backbone": {"optim": {"lr": 1e-3}}})))
    assert config.backbone.optim.lr == 1e-3
