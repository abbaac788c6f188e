"""Nothing a measurement does may be visible on the model afterwards: parameters, buffers,
gradients, requires_grad flags, every submodule's train/eval mode, and the global RNG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from flatkd.landscape import Hessian, Objective, SelectExit, Surface
from flatkd.models import build_model


class TwoExits(nn.Module):
    """A BatchNorm trunk with an early head and a final head: a minimal multi-exit network."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.early = nn.Linear(64, 3)
        self.final = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(x)
        return [self.early(features), self.final(features)]


def snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "flags": {k: p.requires_grad for k, p in model.named_parameters()},
        "modes": {k: m.training for k, m in model.named_modules()},
        "rng": torch.random.get_rng_state(),
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for key, grad in before["grads"].items():
        other = after["grads"][key]
        assert (grad is None and other is None) or torch.equal(grad, other), key
    assert before["flags"] == after["flags"]
    assert before["modes"] == after["modes"]
    assert torch.equal(before["rng"], after["rng"])


def make_model() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    net = TwoExits()
    net.train()
    net.trunk[1].eval()  # a mixed state must come back as it was
    net.early.weight.requires_grad_(False)  # a frozen parameter
    net.final[0].weight.grad = torch.ones_like(net.final[0].weight)  # a stale gradient
    with torch.no_grad():  # trained-looking BatchNorm (loss-landscapes divides by a zero bias)
        for bn in (net.trunk[1], net.final[1]):
            bn.bias.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 2, 6, 6, generator=g), torch.randint(0, 3, (12,), generator=g)
    return net, [(x[:8], y[:8]), (x[8:], y[8:])]


CALLS: dict[str, Callable[[nn.Module, Any], Any]] = {
    "eigenvalues": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d).eigenvalues(top_k=2, max_steps=10),
    "power": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d).eigenvalues(method="power", max_steps=5),
    "trace": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d, cache_graph=True).trace(hvps=6),
    "density": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d).density(runs=2, steps=4),
    "spectrum": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d).spectrum(runs=2, steps=4, probes=2, tol=1e-2),
    "pyhessian": lambda m, d: Hessian(m, nn.CrossEntropyLoss(), d, backend="pyhessian").spectrum(
        runs=1, steps=4, probes=2
    ),
    "line": lambda m, d: Surface(m, nn.CrossEntropyLoss(), d).line(steps=3),
    "plane": lambda m, d: Surface(m, nn.CrossEntropyLoss(), d).plane(steps=3),
    "interpolation": lambda m, d: Surface(m, nn.CrossEntropyLoss(), d).interpolation(m.state_dict(), steps=3),
    "sharpness": lambda m, d: Surface(m, nn.CrossEntropyLoss(), d).epsilon_sharpness(steps=2),
    "loss-landscapes": lambda m, d: Surface(m, nn.CrossEntropyLoss(), d, backend="loss-landscapes").plane(steps=3),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_no_side_effects(name: str) -> None:
    net, data = make_model()
    model = SelectExit(net, -1)
    before = snapshot(model)
    CALLS[name](model, data)
    assert_same(before, snapshot(model))


def test_exit_selection_measures_only_the_parameters_that_exit_uses() -> None:
    net, data = make_model()
    final = Hessian(SelectExit(net, -1), nn.CrossEntropyLoss(), data)
    early = Hessian(SelectExit(net, 0), nn.CrossEntropyLoss(), data)
    trunk = sum(p.numel() for p in net.trunk.parameters())
    assert final.dim == trunk + sum(p.numel() for p in net.final.parameters())
    assert early.dim == trunk + net.early.bias.numel()  # its weight is frozen
    assert early.eigenvalues().values[0] != final.eigenvalues().values[0]



def test_a_multi_exit_net_computes_only_the_path_to_the_selected_exit() -> None:
    """``SelectExit`` runs ``MultiExitNet.forward_exit``: the same loss, gradient and HVP as the
    exit taken from the full forward, and the other exits' heads are never run."""
    torch.manual_seed(0)
    net = build_model("cpu-tiny", "mv", num_classes=3).double().eval()
    g = torch.Generator().manual_seed(2)
    data = [(torch.randn(3, 2, 2, 24, 24, generator=g, dtype=torch.float64), torch.tensor([0, 2, 1]))]
    calls: list[nn.Module] = []
    for ic in net.ics:
        ic.register_forward_hook(lambda module, *_: calls.append(module))
    fast = Objective(SelectExit(net, -1), nn.CrossEntropyLoss(), data)
    point = fast.theta.detach().requires_grad_(True)
    (grad_fast,) = torch.autograd.grad(fast.loss(point), point)
    v = torch.randn(fast.dim, generator=g, dtype=torch.float64)
    hvp_fast = Hessian.of(fast).operator.matvec(v)
    assert calls == []
    full = Objective(FromFullForward(net, -1), nn.CrossEntropyLoss(), data)
    assert calls and fast.space == full.space and fast.dim < sum(p.numel() for p in net.parameters())
    (grad_full,) = torch.autograd.grad(full.loss(point), point)
    torch.testing.assert_close(grad_fast, grad_full, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(hvp_fast, Hessian.of(full).operator.matvec(v), rtol=1e-10, atol=1e-12)


def test_hessian_and_surface_of_one_objective_equal_their_own() -> None:
    net, data = make_model()
    model = SelectExit(net, -1)
    objective = Objective(model, nn.CrossEntropyLoss(), data)
    shared = Hessian.of(objective).eigenvalues(top_k=2, max_steps=8)
    assert shared.values == Hessian(model, nn.CrossEntropyLoss(), data).eigenvalues(top_k=2, max_steps=8).values
    plane = Surface.of(objective).plane(steps=3)
    own = Surface(model, nn.CrossEntropyLoss(), data).plane(steps=3)
    assert (plane.loss == own.loss).all() and (plane.accuracy == own.accuracy).all()
    assert plane.loss[1, 1] == objective.centre.loss


class FromFullForward(nn.Module):
    """Exit ``index`` picked from the full forward's list (what ``SelectExit`` does for other models)."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.index]
