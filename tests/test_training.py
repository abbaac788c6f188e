"""The training loop: the stand-in data it trains on, freezing, kill-and-resume, loss objects and hooks,
optimiser, schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.clips import StandInClips
from helpers.interrupt import Interrupt, kill_after

from flatkd.config import from_dict
from flatkd.errors import ConfigError, FlatkdError
from flatkd.fileio import load_tensors
from flatkd.models import build_model
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import SplitData, load_network, train_network
from flatkd.train import (
    Batch,
    ExitCrossEntropy,
    OptimConfig,
    ScheduleConfig,
    StageConfig,
    TeacherLogits,
    TrainConfig,
    fit_loss,
)
from flatkd.train.optim import build_optimizer, lr_factor

TIMING_COLUMNS = ["seconds", "clips_per_s", "data_wait"]


def _config(**overrides: object) -> TrainConfig:
    settings = {
        "batch_size": 8,
        "eval_batch_size": 16,
        "input_size": 32,
        "num_segments": 2,
        "workers": 0,
        "backbone": {"epochs": 2, "optim": {"name": "sgd", "lr": 0.05}},
        "ics": {"epochs": 2, "optim": {"name": "adam", "lr": 0.003}},
    }
    return from_dict(TrainConfig, settings | overrides)


def _data(n_train: int = 32) -> SplitData:
    return SplitData(
        StandInClips(n_train, noise=2.0),
        StandInClips(16, train=False, seed=1, noise=2.0),
        StandInClips(12, train=False, seed=2, noise=2.0),
    )


def test_standin_follows_the_data_contract() -> None:
    train = StandInClips(6, train=True)
    inputs, label = train[3]
    assert {m: tuple(x.shape) for m, x in inputs.items()} == {
        "iframe": (2, 3, 32, 32),
        "mv": (2, 2, 32, 32),
        "residual": (2, 3, 32, 32),
    }
    assert all(x.dtype == torch.float32 for x in inputs.values()) and label == (3 * 7) % 4
    again, _ = train[3]
    assert torch.equal(again["mv"], inputs["mv"])
    train.set_epoch(1)
    assert not torch.equal(train[3][0]["mv"], inputs["mv"])
    evaluation = StandInClips(6, train=False)
    first = evaluation[2][0]["iframe"]
    evaluation.set_epoch(5)
    assert torch.equal(evaluation[2][0]["iframe"], first)


@pytest.mark.parametrize("kill_stage", ["backbone", "ic-ce"])
def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path: Path, kill_stage: str) -> None:
    whole, resumed = RunDir(tmp_path / "whole"), RunDir(tmp_path / "resumed")
    train_network(whole, "mv", _config(), _data(), num_classes=4)
    with pytest.raises(Interrupt):
        train_network(
            resumed, "mv", _config(), _data(), num_classes=4, on_epoch_end=kill_after(kill_stage, 1)
        )
    with pytest.raises(FlatkdError, match="pass --resume to continue"):
        train_network(resumed, "mv", _config(), _data(), num_classes=4)
    with pytest.raises(ConfigError, match=r"setting 'seed' \(0 -> 1\) differs"):
        train_network(resumed, "mv", _config(seed=1), _data(), num_classes=4, resume=True)
    train_network(resumed, "mv", _config(), _data(), num_classes=4, resume=True)

    a, b = whole.read_metrics(), resumed.read_metrics()
    assert len(a) == 4 and list(a["stage"]) == ["backbone"] * 2 + ["ic-ce"] * 2
    pd.testing.assert_frame_equal(
        a.drop(columns=TIMING_COLUMNS), b.drop(columns=TIMING_COLUMNS), check_exact=True
    )
    files = sorted(p.relative_to(whole.path) for p in whole.path.rglob("*.safetensors"))
    assert len(files) == 2 + 4  # best weights of 2 stages, logits of 2 stages x 2 splits
    for name in files:
        x, y = load_tensors(whole.path / name), load_tensors(resumed.path / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    assert (whole.macs_path.read_text()) == resumed.macs_path.read_text()


def test_ic_training_leaves_the_frozen_backbone_bit_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    model = build_model("cpu-tiny", "residual", num_classes=4)
    data = _data()
    config = _config()
    model.set_trainable("backbone")
    common = {"config": config}
    fit_loss(model, data.train, data.val, run.stage_files("backbone", "residual"), stage="backbone", stage_config=config.backbone,
        loss=ExitCrossEntropy((-1,)), monitor=(-1,), **common)  # fmt: skip
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("ics.")}
    ics_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("ics.")}
    model.set_trainable("ics")
    result = fit_loss(model, data.train, data.val, run.stage_files("ic-ce", "residual"), stage="ic-ce", stage_config=config.ics,
                 loss=ExitCrossEntropy((0, 1, 2)), monitor=(0, 1, 2), **common)  # fmt: skip
    after = model.state_dict()
    assert any("running_mean" in k for k in frozen) and any("data_bn" in k for k in frozen)
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    assert all(not torch.equal(ics_before[k], after[k]) for k in ics_before if k.endswith(".weight"))
    # ICs learn: the best mean IC validation accuracy is above chance (1/4)
    assert result.best_metric > 0.4


def test_finished_run_reloads_and_records_logits_and_macs(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.set_section(["data", "classes"], ["a", "b", "c", "d"])
    config = _config()
    run.set_section(["train", "iframe"], {"preset": "cpu-tiny", "input_size": 32, "num_segments": 2})
    data = _data()
    results = train_network(run, "iframe", config, data, num_classes=4)
    logits, labels = run.load_logits("ic-ce", "iframe", "test")
    assert logits.shape == (12, 4, 4) and labels.tolist() == [(i * 7) % 4 for i in range(12)]
    net = load_network(run, "iframe")
    with torch.no_grad():
        clips = torch.stack([data.test[i][0]["iframe"] for i in range(12)])
        torch.testing.assert_close(torch.stack(net(clips), dim=1), logits, rtol=1e-5, atol=1e-5)
    val = run.load_logits("ic-ce", "iframe", "val")[0]
    best = results[1].history[results[1].best_epoch - 1]  # epochs count from 1
    val_acc = (val.argmax(-1) == torch.tensor(data.val.labels)[:, None]).double().mean(0)
    assert [best[f"val_acc_exit{i}"] for i in range(4)] == pytest.approx(val_acc.tolist())
    macs = run.read_macs()["iframe"]
    assert len(macs) == 4 and macs == sorted(macs)
    table = run.read_metrics()
    assert list(table.columns[:8]) == [
        "stage",
        "modality",
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
    ]


def test_teacher_hook_runs_other_modalities_of_the_same_clips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = build_model("cpu-tiny", "iframe", num_classes=4)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    hook = TeacherLogits({"iframe": teacher})
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def distil(exit_logits: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        target = batch.teacher_logits["iframe"]
        seen.append((batch.inputs["iframe"].detach().clone(), target.clone()))
        return torch.stack(
            [
                torch.nn.functional.kl_div(z.log_softmax(-1), target.softmax(-1), reduction="batchmean")
                for z in exit_logits[:-1]
            ]
        ).mean()

    student = build_model("cpu-tiny", "mv", num_classes=4)
    student.set_trainable("ics")
    config = _config()
    data = _data(16)
    fit_loss(
        student,
        data.train,
        data.val,
        RunDir(tmp_path).stage_files("ic-kd", "mv"),
        stage="ic-kd",
        config=config,
        stage_config=StageConfig(epochs=1),
        loss=distil,
        monitor=(0, 1, 2),
        hooks=[hook],
    )
    assert len(seen) == 2 and hook.modalities == ("iframe",)
    teacher.eval()
    with torch.no_grad():
        for clips, target in seen:
            assert torch.equal(teacher(clips)[-1], target)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())


def test_optimizer_groups_follow_lr_multiplier_patterns() -> None:
    net = build_model("cpu-tiny", "mv", num_classes=4)
    rules = {"data_bn.*": 0.1, "backbone.conv1.*": 0.1, "backbone.fc.*": 1.0, "backbone.*": 0.01}
    optimizer = build_optimizer(net, OptimConfig(name="adam", lr=1.0, weight_decay=0.5, lr_mult=rules))
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    named = dict(net.named_parameters())
    expected = {
        "data_bn.weight": (0.1, 0.0),
        "backbone.conv1.weight": (0.1, 0.5),
        "backbone.fc.weight": (1.0, 0.5),
        "backbone.fc.bias": (1.0, 0.0),
        "backbone.layer2.0.conv1.weight": (0.01, 0.5),
        "ics.0.conv.weight": (1.0, 0.5),
        "ics.0.bn.bias": (1.0, 0.0),
    }
    for name, (mult, decay) in expected.items():
        group = group_of[id(named[name])]
        assert (group["lr_mult"], group["weight_decay"]) == (mult, decay), name
    net.set_trainable("ics")
    optimizer = build_optimizer(net, OptimConfig())
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.ics.parameters()))


def test_learning_rate_schedules_by_hand() -> None:
    step = ScheduleConfig(name="step", milestones=(2, 4), gamma=0.1)
    assert [lr_factor(step, s, 10, 6) for s in (0, 19, 20, 39, 40, 59)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    cosine = ScheduleConfig(name="cosine", min_lr_ratio=0.2)
    assert lr_factor(cosine, 0, 10, 4) == 1.0
    assert lr_factor(cosine, 20, 10, 4) == pytest.approx(0.6)  # halfway: 0.2 + 0.8 * 0.5
    assert lr_factor(cosine, 30, 10, 4) == pytest.approx(0.2 + 0.8 * (1 + math.cos(0.75 * math.pi)) / 2)
    warm = ScheduleConfig(name="constant", warmup_epochs=0.5)
    assert [lr_factor(warm, s, 10, 4) for s in (0, 1, 4, 5, 30)] == pytest.approx([0.2, 0.4, 1.0, 1.0, 1.0])


def test_config_rejects_wrong_keys_and_values() -> None:
    with pytest.raises(ConfigError, match=r"config.backbone.optim: unknown key 'learning_rate'"):
        from_dict(TrainConfig, {"backbone": {"optim": {"learning_rate": 0.1}}})
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        from_dict(TrainConfig, {"batch_size": 0})
    with pytest.raises(ConfigError, match="exceeds the 8 training clips"):
        config = _config(batch_size=16)
        net = build_model("cpu-tiny", "mv", 4)
        fit_loss(
            net,
            StandInClips(8),
            StandInClips(4, train=False),
            RunDir("unused").stage_files("backbone", "mv"),
            stage="backbone",
            config=config,
            stage_config=config.backbone,
            loss=ExitCrossEntropy((-1,)),
            monitor=(-1,),
        )
    with pytest.raises(ConfigError, match="the validation split is empty"):
        fit_loss(
            build_model("cpu-tiny", "mv", 4),
            StandInClips(8),
            StandInClips(0, train=False),
            RunDir("unused").stage_files("backbone", "mv"),
            stage="backbone",
            config=_config(),
            stage_config=StageConfig(epochs=1),
            loss=ExitCrossEntropy((-1,)),
            monitor=(-1,),
        )
