"""Generative feature KD: shapes, the KL against its closed form, stage freezing, and a tiny
teacher/student run whose losses must fall."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from flatkd.distill.genkd import (
    AttentionHead,
    FeatureCVAE,
    GenKDBranch,
    GenKDConfig,
    GenKDStudent,
    cvae_loss,
    kl_to_attention_prior,
    reweight,
)
from flatkd.distill.genkd_train import GenKDStep, recon_ramp
from flatkd.errors import ConfigError
from flatkd.models.layout import clip_layout, segment_layout
from flatkd.train import Batch, Optimised

SEGMENTS = 3


class TinyNet(nn.Module):
    """Two convolutions per TSN segment, then a linear head on the pooled clip features."""

    def __init__(self, in_channels: int, width: int, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(width, classes)

    def features(self, clips: torch.Tensor) -> torch.Tensor:  # [B, T, C, H, W] -> [B, C', T, H', W']
        return clip_layout(self.body(clips.flatten(0, 1)), clips.shape[1])

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features.mean(dim=(2, 3, 4)))


def test_layouts_and_attention_shapes_for_any_spatial_size() -> None:
    torch.manual_seed(0)
    segments = torch.randn(2 * SEGMENTS, 8, 5, 7)
    clips = clip_layout(segments, SEGMENTS)
    assert clips.shape == (2, 8, SEGMENTS, 5, 7)
    assert torch.equal(clips[1, :, 2], segments[1 * SEGMENTS + 2])
    assert torch.equal(segment_layout(clips), segments)
    head = AttentionHead(8)
    for size in [(5, 7), (2, 2), (11, 3)]:
        attention = torch.sigmoid(head(torch.randn(2, 8, SEGMENTS, *size)))
        assert attention.shape == (2, 8, SEGMENTS)
        assert bool(((attention > 0) & (attention < 1)).all())
    with pytest.raises(ValueError, match="segments"):
        clip_layout(torch.randn(5, 8, 4, 4), SEGMENTS)


@pytest.mark.parametrize("size", [(4, 4), (6, 3)])
def test_cvae_shapes_and_reweighting(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    features = torch.relu(torch.randn(2, 8, SEGMENTS, *size))
    attention = torch.rand(2, 8, SEGMENTS)
    cvae = FeatureCVAE(8, hidden=16, grid=4)
    mean, log_var, recon = cvae(features, attention)
    assert mean.shape == log_var.shape == attention.shape
    assert recon.shape == features.shape
    assert cvae.generate(attention, size).shape == features.shape
    weighted = reweight(features, attention)
    # same L1 mass per clip as the features, same direction per clip as F * A
    torch.testing.assert_close(weighted.abs().sum(dim=(1, 2, 3, 4)), features.abs().sum(dim=(1, 2, 3, 4)))
    plain = features * attention[..., None, None]
    for clip in range(2):
        torch.testing.assert_close(weighted[clip] / weighted[clip].abs().sum(), plain[clip] / plain[clip].abs().sum())


def test_kl_term_equals_the_closed_form_by_hand() -> None:
    # mean (1, 0.5), variance (1, 4), prior mean A = (0.5, 0.5), prior variance 1:
    # KL_i = 1/2 (s^2 + (mu - A)^2 - 1 - ln s^2): 1/2 (1 + 0.25 - 1 - 0) = 0.125 and
    # 1/2 (4 + 0 - 1 - ln 4) = 0.8068528; averaged over the two elements: 0.4659264.
    mean = torch.tensor([[[1.0], [0.5]]])
    log_var = torch.log(torch.tensor([[[1.0], [4.0]]]))
    attention = torch.tensor([[[0.5], [0.5]]])
    assert kl_to_attention_prior(mean, log_var, attention).item() == pytest.approx(0.4659264, abs=1e-6)
    assert (0.125 + 0.5 * (3 - math.log(4))) / 2 == pytest.approx(0.4659264, abs=1e-7)


def test_kl_term_matches_torch_distributions_and_cvae_loss_weights_it() -> None:
    torch.manual_seed(1)
    mean, log_var, attention = torch.randn(3, 6, 4), torch.randn(3, 6, 4), torch.rand(3, 6, 4)
    reference = kl_divergence(Normal(mean, torch.exp(0.5 * log_var)), Normal(attention, 1.0)).mean()
    kl = kl_to_attention_prior(mean, log_var, attention)
    torch.testing.assert_close(kl, reference)
    features, recon = torch.randn(3, 6, 4, 2, 2), torch.randn(3, 6, 4, 2, 2)
    expected = F.mse_loss(recon, features) + 0.1 * kl
    torch.testing.assert_close(cvae_loss(recon, features, mean, log_var, attention), expected)


def test_reconstruction_ramp_and_bad_weights() -> None:
    config = GenKDConfig()
    assert [recon_ramp(e, config) for e in (0, 10, 20, 35)] == [0.0, 0.25, 0.5, 0.5]
    assert recon_ramp(0, GenKDConfig(ramp_epochs=0)) == 0.5
    with pytest.raises(ConfigError, match="genkd"):
        GenKDConfig(gd_weight=-1.0)


class Checked(torch.optim.Adam):
    """Adam that asserts, at every step, that parameters outside its stage received no gradient."""

    def __init__(self, params: Iterable[nn.Parameter], forbidden: Iterable[nn.Parameter], lr: float) -> None:
        super().__init__(params, lr=lr)
        self.forbidden = list(forbidden)

    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's signature
        assert all(p.grad is None for p in self.forbidden), "a frozen parameter received a gradient"
        return super().step(closure)


def _epoch(
    batches: list, epoch: int, net: nn.Module, student: GenKDStudent, cvae_opt: torch.optim.Optimizer,
    net_opt: torch.optim.Optimizer, teacher_net: nn.Module | None = None, teacher: GenKDBranch | None = None,
) -> dict[str, float]:
    """Drive a :class:`GenKDStep` through one epoch over ``batches`` (student clips, teacher clips,
    labels) as the training loop does, without its data loader and files: per phase, per batch,
    minimise ``total`` with the phase's optimiser. Returns the mean of every term, ``<phase>_<term>``."""
    optimizers = {"cvae": Optimised(cvae_opt, 0.0), "network": Optimised(net_opt, 0.0)}
    teacher_side = {} if teacher is None else {"teacher_net": teacher_net, "teacher": teacher, "teacher_modality": "t"}
    step = GenKDStep(net, student, optimizers, modality="s", kept=net, **teacher_side)
    sums: dict[str, list[float]] = {}
    for phase in step.phases:
        with step.phase(phase):
            for clips, teacher_clips, labels in batches:
                output = step(phase, Batch({"s": clips, "t": teacher_clips}, labels, epoch))
                optimizer = step.optimizers[phase.optimizer].optimizer
                optimizer.zero_grad(set_to_none=True)
                output.losses["total"].backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                for term, value in output.losses.items():
                    sums.setdefault(f"{phase.name}_{term}", []).append(value.item())
    return {name: sum(values) / len(values) for name, values in sums.items()}


def _batches(generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Four batches of 8 clips over 4 classes, each class adding its own random pattern to
    Gaussian noise: the student sees 2-channel 6x6 inputs (MV-like), the teacher 3-channel 8x8
    inputs of the same clips."""
    student_patterns = torch.randn(4, 1, 2, 6, 6, generator=generator)
    teacher_patterns = torch.randn(4, 1, 3, 8, 8, generator=generator)
    batches = []
    for _ in range(4):
        labels = torch.randint(0, 4, (8,), generator=generator)
        student = torch.randn(8, SEGMENTS, 2, 6, 6, generator=generator) + student_patterns[labels]
        teacher = torch.randn(8, SEGMENTS, 3, 8, 8, generator=generator) + teacher_patterns[labels]
        batches.append((student, teacher, labels))
    return batches


def _pretrain(net: TinyNet, batches: list, which: int, steps: int) -> None:
    """A few label-CE steps, so that GenKD starts from a trained network as it does in flatkd."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = F.cross_entropy(net.classify(net.features(batch[which])), batch[2])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_tiny_teacher_student_run_losses_fall_and_frozen_parts_stay_put() -> None:
    torch.manual_seed(0)
    batches = _batches(torch.Generator().manual_seed(0))
    teacher_net = TinyNet(3, 12)
    _pretrain(teacher_net, batches, 1, steps=40)
    teacher_net.requires_grad_(False)
    # Feature Representation: the teacher's branch learns on the frozen teacher network.
    as_student = GenKDStudent(12, hidden=24)
    teacher = as_student.branch
    cvae_opt = torch.optim.Adam(as_student.cvae_parameters(), lr=3e-3)
    net_opt = torch.optim.Adam(as_student.network_parameters(), lr=3e-3)
    teacher_log = [
        _epoch([(t, None, y) for _, t, y in batches], e, teacher_net, as_student, cvae_opt, net_opt)
        for e in range(12)
    ]
    assert set(teacher_log[0]) == {"cvae_cvae", "cvae_total", "net_task", "net_recon", "net_total"}
    assert teacher_log[-1]["cvae_total"] < 0.5 * teacher_log[0]["cvae_total"]
    assert teacher_log[-1]["net_recon"] < 0.8 * teacher_log[0]["net_recon"]

    snapshot = {k: v.clone() for k, v in [*teacher.state_dict().items(), *teacher_net.state_dict().items()]}
    student_net = TinyNet(2, 8)
    _pretrain(student_net, batches, 0, steps=10)
    student = GenKDStudent(8, teacher_channels=12, hidden=24)
    net_side = [*student_net.parameters(), *student.network_parameters()]
    cvae_opt = Checked(student.cvae_parameters(), [*net_side, *teacher.parameters()], lr=1e-2)
    net_opt = Checked(net_side, [*student.cvae_parameters(), *teacher.parameters()], lr=1e-3)
    log = [_epoch(batches, e, student_net, student, cvae_opt, net_opt, teacher_net, teacher) for e in range(15)]
    first, last = log[0], log[-1]
    assert set(first) == {"cvae_cvae", "cvae_gd", "cvae_total", "net_task", "net_recon", "net_ad", "net_total"}
    for term, factor in [("cvae_total", 0.5), ("cvae_gd", 0.7), ("net_task", 0.9), ("net_recon", 0.8), ("net_ad", 0.8)]:
        assert last[term] < factor * first[term], (term, first[term], last[term])
    after = {k: v for k, v in [*teacher.state_dict().items(), *teacher_net.state_dict().items()]}
    assert all(torch.equal(snapshot[k], after[k]) for k in snapshot)
    assert all(p.requires_grad for p in student.parameters())  # flags restored after the epoch


def test_same_seed_same_losses() -> None:
    def run() -> dict[str, float]:
        torch.manual_seed(5)
        net, student = TinyNet(2, 8), GenKDStudent(8, hidden=16)
        cvae_opt = torch.optim.Adam(student.cvae_parameters(), lr=1e-3)
        net_opt = torch.optim.Adam([*net.parameters(), *student.network_parameters()], lr=1e-3)
        data = [(x, None, y) for x, _, y in _batches(torch.Generator().manual_seed(1))]
        return _epoch(data, 3, net, student, cvae_opt, net_opt)

    assert run() == run()
