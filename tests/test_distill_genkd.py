"""Generative feature KD: shapes, the KL against its closed form, stage freezing, and a tiny
teacher/student run whose losses must fall."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

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
from flatkd.config import from_dict
from flatkd.distill.genkd_train import GenKDStep, gradient_ratios, recon_ramp
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


@pytest.mark.parametrize("epochs", [6, 20])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 1.0])
def test_reconstruction_ramp_reaches_full_weight_at_its_fraction_of_the_stage(epochs: int, fraction: float) -> None:
    config = GenKDConfig(ramp_fraction=fraction)
    weights = [recon_ramp(e, epochs, config) for e in range(epochs)]
    full = math.ceil(Fraction(str(fraction)) * epochs)  # first epoch e with e / epochs >= fraction
    assert weights[0] == 0.0
    assert all(w == 0.5 for w in weights[full:]) and all(w < 0.5 for w in weights[:full])
    assert weights[:full] == sorted(weights[:full]) and len(set(weights[:full])) == full
    if full < epochs:  # linear in the share of the stage done
        assert weights[full - 1] == pytest.approx(0.5 * (full - 1) / epochs / fraction)


def test_ramp_defaults_to_the_release_share_and_validates() -> None:
    # the release ramps over 20 of 200 epochs: the default reaches full weight at 10% of any stage
    assert GenKDConfig().ramp_fraction == 0.1
    assert [recon_ramp(e, 6, GenKDConfig()) for e in range(3)] == [0.0, 0.5, 0.5]
    assert [recon_ramp(e, 20, GenKDConfig()) for e in range(4)] == [0.0, 0.25, 0.5, 0.5]
    assert recon_ramp(0, 6, GenKDConfig(ramp_fraction=0.0)) == 0.5
    with pytest.raises(ConfigError, match="genkd"):
        GenKDConfig(gd_weight=-1.0)
    with pytest.raises(ConfigError, match=r"ramp_fraction.*\[0, 1\]"):
        GenKDConfig(ramp_fraction=1.5)


def test_an_old_ramp_epochs_key_names_its_replacement_in_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        from_dict(GenKDConfig, {"ramp_epochs": 20}, where="distill.genkd.mv settings.genkd.loss")
    message = str(error.value)
    assert "\n" not in message and "'ramp_epochs' was replaced by ramp_fraction" in message
    assert message.startswith("distill.genkd.mv settings.genkd.loss:")


def test_gradient_ratios_by_hand() -> None:
    # task = 3 (p0 + p1): grad (3, 3), norm 3 sqrt 2; ad = p0^2 at p0 = 1: grad (2, 0), norm 2;
    # recon = p1^2 at p1 = 2: grad (0, 4), norm 4. Weighted: 0.1 * 2 and 0.25 * 4 over 3 sqrt 2.
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    losses = {"task": 3 * p.sum(), "ad": p[0] ** 2, "recon": p[1] ** 2}
    ratios = gradient_ratios(losses, {"ad": 0.1, "recon": 0.25, "gd": 1.0}, [p])
    assert ratios == pytest.approx({"ad": 0.2 / (3 * math.sqrt(2)), "recon": 1.0 / (3 * math.sqrt(2))})
    assert gradient_ratios(losses, {"recon": 0.0}, [p]) == {"recon": 0.0}
    assert p.grad is None  # measured without accumulating into .grad


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
    probe_batches: int = 2, epochs: int = 10,
) -> dict[str, float]:
    """Drive a :class:`GenKDStep` through one epoch over ``batches`` (student clips, teacher clips,
    labels) as the training loop does, without its data loader and files: per phase, per batch,
    minimise ``total`` with the phase's optimiser. Returns the mean of every term, ``<phase>_<term>``,
    and the step's epoch columns (reconstruction weight, gradient ratios)."""
    optimizers = {"cvae": Optimised(cvae_opt, 0.0), "network": Optimised(net_opt, 0.0)}
    teacher_side = {} if teacher is None else {"teacher_net": teacher_net, "teacher": teacher, "teacher_modality": "t"}
    step = GenKDStep(
        net, student, optimizers, modality="s", kept=net, epochs=epochs, probe_batches=probe_batches, **teacher_side
    )
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
    return {name: sum(values) / len(values) for name, values in sums.items()} | step.epoch_columns(epoch)


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
    without_teacher = {"cvae_cvae", "cvae_total", "net_task", "net_recon", "net_total", "recon_weight", "recon_grad_ratio"}
    assert set(teacher_log[0]) == without_teacher  # no GD, no AD, no AD gradient ratio
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
    assert set(first) == without_teacher | {"cvae_gd", "net_ad", "ad_grad_ratio"}
    assert 0 < first["ad_grad_ratio"] < math.inf and first["recon_grad_ratio"] == 0.0  # ramp weight 0 at epoch 0
    assert log[5]["recon_grad_ratio"] > 0
    for term, factor in [("cvae_total", 0.5), ("cvae_gd", 0.7), ("net_task", 0.9), ("net_recon", 0.8), ("net_ad", 0.8)]:
        assert last[term] < factor * first[term], (term, first[term], last[term])
    after = {k: v for k, v in [*teacher.state_dict().items(), *teacher_net.state_dict().items()]}
    assert all(torch.equal(snapshot[k], after[k]) for k in snapshot)
    assert all(p.requires_grad for p in student.parameters())  # flags restored after the epoch


def test_same_seed_same_losses_and_gradient_probes_change_nothing() -> None:
    def run(probes: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        torch.manual_seed(5)
        net, student = TinyNet(2, 8), GenKDStudent(8, hidden=16)
        cvae_opt = torch.optim.Adam(student.cvae_parameters(), lr=1e-3)
        net_opt = torch.optim.Adam([*net.parameters(), *student.network_parameters()], lr=1e-3)
        data = [(x, None, y) for x, _, y in _batches(torch.Generator().manual_seed(1))]
        return _epoch(data, 3, net, student, cvae_opt, net_opt, probe_batches=probes), net.state_dict()

    (probed, weights), (again, same) = run(4), run(4)
    assert probed == again and "recon_grad_ratio" in probed
    unprobed, plain = run(0)
    assert unprobed == {k: v for k, v in probed.items() if not k.endswith("_grad_ratio")}
    assert all(torch.equal(weights[k], plain[k]) for k in weights)


def _network_gradient(step: GenKDStep, batch: Batch) -> list[torch.Tensor]:
    """The gradient of the network phase's total loss with respect to the student network."""
    torch.manual_seed(0)  # the prior sample of the reconstruction term
    net_phase = step.phases[1]
    with step.phase(net_phase):
        total = step(net_phase, batch).losses["total"]
        return list(torch.autograd.grad(total, list(step.student_net.parameters())))


def test_without_a_teacher_the_gradient_does_not_depend_on_the_teacher_modality() -> None:
    torch.manual_seed(0)
    clips, teacher_clips, labels = _batches(torch.Generator().manual_seed(2))[0]
    teacher_net, student_net = TinyNet(3, 12), TinyNet(2, 8)
    teacher = GenKDBranch(12, hidden=24)
    other = {"s": clips, "t": torch.randn_like(teacher_clips)}

    def step(with_teacher: bool) -> GenKDStep:
        student = GenKDStudent(8, teacher_channels=12 if with_teacher else None, hidden=24)
        params = [*student_net.parameters(), *student.network_parameters()]
        optimizers = {
            "cvae": Optimised(torch.optim.SGD(student.cvae_parameters(), lr=0.0), 0.0),
            "network": Optimised(torch.optim.SGD(params, lr=0.0), 0.0),
        }
        side = {"teacher_net": teacher_net, "teacher": teacher, "teacher_modality": "t"} if with_teacher else {}
        return GenKDStep(student_net, student, optimizers, modality="s", kept=student_net, epochs=4, **side)

    distilled = step(True)
    seen, moved = (_network_gradient(distilled, Batch(x, labels, 2)) for x in ({"s": clips, "t": teacher_clips}, other))
    assert not all(torch.equal(a, b) for a, b in zip(seen, moved))  # the teacher's clips steer AD
    control = step(False)
    base = _network_gradient(control, Batch({"s": clips}, labels, 2))
    for inputs in ({"s": clips, "t": teacher_clips}, other):
        assert all(torch.equal(a, b) for a, b in zip(base, _network_gradient(control, Batch(inputs, labels, 2))))
    losses = control(control.phases[1], Batch({"s": clips}, labels, 2)).losses
    assert set(losses) == {"task", "recon", "total"}
