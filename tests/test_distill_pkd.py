"""PKD: the teacher at every epoch follows chain.json; chain.json errors; the IC loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from flatkd.distill.kd import KDLoss
from flatkd.distill.pkd import PKDConfig, PKDLoss, build_schedule
from flatkd.errors import ConfigError, InputFileError, MissingPrerequisiteError
from flatkd.landscape.chain import Chain
from flatkd.runs.chain import read_chain, write_chain
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE
from flatkd.train.losses import Batch


def expected(phases: list[tuple[range, str]], epochs: int) -> list[str]:
    """Teacher label per epoch from explicit epoch ranges."""
    labels = [""] * epochs
    for epochs_of_phase, label in phases:
        for e in epochs_of_phase:
            labels[e] = label
    assert all(labels), "test ranges must cover every epoch"
    return labels


CASES = [
    # chain (sharpest first), student, epochs, config, teacher per epoch
    (["mv", "residual", "iframe"], "iframe", 300, PKDConfig(),
     [(range(0, 50), "mv"), (range(50, 100), "residual"), (range(100, 300), "own")]),
    (["mv", "residual", "iframe"], "mv", 300, PKDConfig(),
     [(range(0, 50), "own"), (range(50, 100), "residual"), (range(100, 300), "iframe")]),
    (["mv", "residual", "iframe"], "mv", 300, PKDConfig(own_head_flattest=True),  # the release, literally
     [(range(0, 50), "own"), (range(50, 100), "residual"), (range(100, 300), "own")]),
    (["mv", "residual", "iframe"], "residual", 300, PKDConfig(variant="pkd-reversed"),
     [(range(0, 50), "iframe"), (range(50, 100), "own"), (range(100, 300), "mv")]),
    (["iframe", "residual", "mv"], "residual", 300, PKDConfig(variant="pkd-paper"),  # ignores the chain
     [(range(0, 50), "mv"), (range(50, 100), "own"), (range(100, 300), "iframe")]),
    (["mv", "residual", "iframe"], "iframe", 300, PKDConfig(variant="pkd-reversed", own_head_flattest=True),
     [(range(0, 50), "own"), (range(50, 100), "residual"), (range(100, 300), "mv")]),
    (["residual", "mv", "iframe"], "mv", 10, PKDConfig(phase_starts=(0, 3, 7)),
     [(range(0, 3), "residual"), (range(3, 7), "own"), (range(7, 10), "iframe")]),
    (["iframe", "mv", "residual"], "iframe", 12, PKDConfig(),  # release proportions: 1/6, 1/6, rest
     [(range(0, 2), "own"), (range(2, 4), "mv"), (range(4, 12), "residual")]),
    (["iframe", "residual"], "mv", 5, PKDConfig(phase_starts=(0, 4)),
     [(range(0, 4), "iframe"), (range(4, 5), "residual")]),
    (["mv", "residual", "iframe"], "residual", 7, PKDConfig(variant="pkd-iframe", phase_starts=(0, 1, 2)),
     [(range(0, 7), "iframe")]),
    (["mv", "residual", "iframe"], "iframe", 7, PKDConfig(variant="pkd-iframe"), [(range(0, 7), "own")]),
    (["mv", "residual", "iframe"], "residual", 4, PKDConfig(variant="kd"), [(range(0, 4), "own")]),
    # fewer epochs than teachers: the first and the last teach an epoch each, then the last alone
    (["mv", "residual", "iframe"], "iframe", 2, PKDConfig(), [(range(0, 1), "mv"), (range(1, 2), "own")]),
    (["mv", "residual", "iframe"], "residual", 2, PKDConfig(variant="pkd-reversed"),
     [(range(0, 1), "iframe"), (range(1, 2), "mv")]),
    (["mv", "residual", "iframe"], "mv", 1, PKDConfig(), [(range(0, 1), "iframe")]),
    (["mv", "residual", "iframe"], "residual", 3, PKDConfig(),
     [(range(0, 1), "mv"), (range(1, 2), "own"), (range(2, 3), "iframe")]),
]


@pytest.mark.parametrize(("chain", "student", "epochs", "config", "phases"), CASES)
def test_teacher_at_every_epoch_follows_chain_json(
    tmp_path: Path, chain: list[str], student: str, epochs: int, config: PKDConfig, phases: list[tuple[range, str]]
) -> None:
    write_chain(RunDir(tmp_path), Chain(tuple(chain), "trace", {m: float(i) for i, m in enumerate(chain)}))
    schedule = build_schedule(read_chain(RunDir(tmp_path)).order, student, epochs, config)
    got = [schedule.teacher_at(e).label for e in range(epochs)]
    assert got == expected(phases, epochs)
    for e in range(epochs):
        teacher = schedule.teacher_at(e)
        assert teacher.own == (teacher.modality == student)


def test_a_stage_shorter_than_the_chain_names_the_teachers_left_out() -> None:
    chain = ["mv", "residual", "iframe"]
    assert build_schedule(chain, "iframe", 3, PKDConfig()).dropped == ()
    assert [t.label for t in build_schedule(chain, "iframe", 2, PKDConfig()).dropped] == ["residual"]
    assert [t.label for t in build_schedule(chain, "iframe", 1, PKDConfig()).dropped] == ["mv", "residual"]


def test_ce_baseline_has_no_teacher() -> None:
    schedule = build_schedule(["mv", "residual", "iframe"], "mv", 20, PKDConfig(variant="ce"))
    assert [schedule.teacher_at(e) for e in range(20)] == [None] * 20
    assert schedule.external_teachers() == ()


def test_external_teachers_and_missing_teacher_checkpoint_names_flatkd_train(tmp_path: Path) -> None:
    schedule = build_schedule(["mv", "residual", "iframe"], "mv", 300, PKDConfig())
    assert schedule.external_teachers() == ("iframe", "residual")
    iframe_student = build_schedule(["mv", "residual", "iframe"], "iframe", 300, PKDConfig())
    assert iframe_student.external_teachers() == ("mv", "residual")
    run = RunDir(tmp_path)
    with pytest.raises(MissingPrerequisiteError, match=rf"flatkd train --run {tmp_path} --modality iframe"):
        for modality in schedule.external_teachers():
            run.existing_checkpoint(FINAL_TRAIN_STAGE, modality)


def test_schedule_rejects_a_bad_chain_and_student() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_schedule(["mv", "mv"], "mv", 300, PKDConfig())
    with pytest.raises(ConfigError, match="unknown student modality 'rgb'"):
        build_schedule(["mv"], "rgb", 300, PKDConfig())


@pytest.mark.parametrize(
    ("epochs", "config", "match"),
    [
        (300, PKDConfig(phase_starts=(0, 50)), "2 entries but the chain has 3"),
        (300, PKDConfig(phase_starts=(0, 100, 50)), "start at 0 and increase"),
        (300, PKDConfig(phase_starts=(5, 50, 100)), "start at 0 and increase"),
        (80, PKDConfig(phase_starts=(0, 50, 100)), "only 80 epochs"),
        (2, PKDConfig(phase_starts=(0, 1, 2)), "only 2 epochs"),
    ],
)
def test_phases_that_do_not_fit_are_config_errors(epochs: int, config: PKDConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_schedule(["mv", "residual", "iframe"], "mv", epochs, config)


def test_missing_chain_names_rank_modalities(tmp_path: Path) -> None:
    with pytest.raises(MissingPrerequisiteError, match=rf"flatkd rank-modalities --run {tmp_path}"):
        read_chain(RunDir(tmp_path))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('["mv", "residual", "iframe"]', "expected a JSON object"),
        ('{"order": ["mv"]}', "'chain' must be a list"),
        ('{"chain": []}', "empty"),
        ('{"chain": ["mv", "rgb"]}', "unknown modality 'rgb'"),
        ('{"chain": ["mv", "mv"]}', "twice"),
        ('{"chain": ["mv", "iframe"], "scores": {"mv": 1.0}}', "'scores' lack iframe"),
        ('{"chain": ["mv"], "metric": 3}', "'metric' must be a string"),
    ],
)
def test_malformed_chain_is_one_line_naming_rank_modalities(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "chain.json").write_text(content)
    with pytest.raises(InputFileError, match="rank-modalities") as info:
        read_chain(RunDir(tmp_path))
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


def _exits(batch: int = 4, classes: int = 5, n_exits: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, classes, requires_grad=True) for _ in range(n_exits)]


def _batch(epoch: int, labels: torch.Tensor, teacher_logits: dict[str, torch.Tensor] | None = None) -> Batch:
    """The training loop's batch (inputs are not read by the loss)."""
    return Batch(inputs={}, labels=labels, epoch=epoch, teacher_logits=teacher_logits or {})


def test_pkd_loss_own_head_is_mean_kl_of_final_head_to_each_ic() -> None:
    exits = _exits()
    schedule = build_schedule(["mv", "residual", "iframe"], "iframe", 300, PKDConfig())
    pkd = PKDLoss(schedule)
    assert pkd.active_teachers(150) == ()
    loss = pkd(exits, _batch(150, torch.zeros(4, dtype=torch.long)))
    final = Categorical(logits=exits[-1].detach())
    reference = sum(kl_divergence(final, Categorical(logits=z.detach())).mean() for z in exits[:-1]) / 3
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    loss.backward()
    assert exits[-1].grad is None and all(z.grad.abs().sum() > 0 for z in exits[:-1])


def test_pkd_loss_reads_the_current_teachers_logits_from_the_batch() -> None:
    exits = _exits()
    residual, mv = torch.randn(4, 5), torch.randn(4, 5)
    schedule = build_schedule(["mv", "residual", "iframe"], "iframe", 300, PKDConfig())
    pkd = PKDLoss(schedule, KDLoss(temperature=2.0))
    assert [pkd.active_teachers(e) for e in (0, 60, 120)] == [("mv",), ("residual",), ()]
    loss = pkd(exits, _batch(60, torch.zeros(4, dtype=torch.long), {"residual": residual, "mv": mv}))
    target = Categorical(logits=residual / 2)
    reference = sum(kl_divergence(target, Categorical(logits=z.detach() / 2)).mean() for z in exits[:-1]) / 3
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    with pytest.raises(ValueError, match="residual head"):
        pkd(exits, _batch(60, torch.zeros(4, dtype=torch.long), {"mv": mv}))


def test_ce_baseline_loss_is_mean_label_ce_over_ics() -> None:
    exits = _exits()
    labels = torch.tensor([0, 1, 2, 3])
    schedule = build_schedule(["mv", "residual", "iframe"], "mv", 30, PKDConfig(variant="ce"))
    loss = PKDLoss(schedule)(exits, _batch(3, labels))
    reference = sum(-F.log_softmax(z.detach(), 1)[torch.arange(4), labels].mean() for z in exits[:-1]) / 3
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
