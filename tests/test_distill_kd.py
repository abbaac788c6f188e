"""KD loss against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from flatkd.distill.kd import KDLoss
from flatkd.errors import ConfigError

# Two classes. Student logits (0, 0) -> q = (1/2, 1/2). Teacher logits (ln 3, 0) -> p = (3/4, 1/4).
STUDENT = torch.tensor([[0.0, 0.0]])
TEACHER = torch.tensor([[math.log(3.0), 0.0]])
# KL(p || q) = 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 3/4 ln 1.5 - 1/4 ln 2
KL_T1 = 0.75 * 0.4054651081 - 0.25 * 0.6931471806  # = 0.1308120359
# T = 2: teacher logits (ln 3 / 2, 0) -> p = (sqrt3 / (1 + sqrt3), 1 / (1 + sqrt3)) = (0.6339746, 0.3660254);
# student stays (1/2, 1/2): KL = 0.6339746 ln(1.2679492) + 0.3660254 ln(0.7320508)
KL_T2 = 0.6339746 * 0.2374008 + 0.3660254 * (-0.3119054)  # = 0.0363408


def test_default_is_plain_kl_of_teacher_to_student() -> None:
    assert KDLoss()(STUDENT, TEACHER).item() == pytest.approx(KL_T1, abs=1e-7)
    assert KL_T1 == pytest.approx(0.1308120, abs=1e-7)


def test_temperature_without_and_with_t2_scaling() -> None:
    assert KDLoss(temperature=2.0)(STUDENT, TEACHER).item() == pytest.approx(KL_T2, abs=1e-6)
    assert KDLoss(temperature=2.0, t2_scaling=True)(STUDENT, TEACHER).item() == pytest.approx(4 * KL_T2, abs=4e-6)


def test_label_weight_mixes_in_cross_entropy() -> None:
    # CE of student (1/2, 1/2) on label 1 is ln 2.
    loss = KDLoss(alpha=0.25)(STUDENT, TEACHER, torch.tensor([1]))
    assert loss.item() == pytest.approx(0.75 * KL_T1 + 0.25 * math.log(2.0), abs=1e-7)
    with pytest.raises(ValueError, match="labels"):
        KDLoss(alpha=0.25)(STUDENT, TEACHER)


def test_batch_mean_over_samples() -> None:
    # The second sample's student equals its teacher: zero divergence, so the mean halves.
    student = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [1.0, -2.0]])
    assert KDLoss()(student, teacher).item() == pytest.approx(KL_T1 / 2, abs=1e-7)


def test_gradient_equals_release_soft_cross_entropy_and_skips_teacher() -> None:
    torch.manual_seed(0)
    student = torch.randn(5, 7, requires_grad=True)
    teacher = torch.randn(5, 7, requires_grad=True)
    KDLoss(temperature=3.0)(student, teacher).backward()
    ours = student.grad.clone()
    assert teacher.grad is None
    # The release: mean_b -sum_k softmax(t/T) log softmax(s/T)
    student.grad = None
    release = -(torch.softmax(teacher.detach() / 3.0, 1) * torch.log_softmax(student / 3.0, 1)).sum(1).mean()
    release.backward()
    torch.testing.assert_close(ours, student.grad)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"alpha": 1.5}])
def test_bad_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        KDLoss(**kwargs)
