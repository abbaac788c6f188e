"""Bad input gives one clear line (a FlatkdError), never a traceback from deep inside torch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flatkd.errors import FlatkdError
from flatkd.landscape import Hessian, LandscapeInputError, SelectExit, Surface


def data(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))]


class Exits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.a(x), self.b(x)]


def frozen() -> nn.Module:
    model = nn.Linear(4, 3)
    model.requires_grad_(False)
    return model


@pytest.mark.parametrize(
    ("model", "batches", "message"),
    [
        (lambda: nn.Linear(4, 3), lambda: [], "the data iterable is empty"),
        (lambda: nn.Linear(4, 3), lambda: iter(()), "the data iterable is empty"),
        (lambda: nn.ReLU(), data, "has no trainable parameters"),
        (frozen, data, "has no trainable parameters"),
        (lambda: nn.Linear(4, 3), lambda: [(torch.randn(5, 4), torch.zeros(4, dtype=torch.long))],
         "do not have the same batch size"),
        (lambda: nn.Linear(4, 3), lambda: [torch.randn(5, 4)], "is not an (inputs, targets) pair"),
        (lambda: nn.Linear(4, 3), lambda: [(torch.randn(5, 7), torch.zeros(5, dtype=torch.long))],
         "the model fails on batch 0"),
        (lambda: nn.Linear(4, 3), lambda: [(torch.randn(5, 4), torch.full((5,), 9))],
         "the criterion fails on outputs (5, 3)"),
        (Exits, data, "wrap it as flatkd.landscape.SelectExit"),
        (lambda: SelectExit(Exits(), 2), data, "exit 2 does not exist: the model has 2 exits"),
        (lambda: SelectExit(nn.Linear(4, 3), 0), data, "SelectExit wraps a model that returns a list"),
    ],
)
def test_bad_input_is_one_clear_line(model, batches, message: str) -> None:
    for tool in (Hessian, Surface):
        with pytest.raises(LandscapeInputError) as info:
            tool(model(), nn.CrossEntropyLoss(), batches())
        assert message in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, FlatkdError)


def test_non_scalar_loss_and_bad_settings() -> None:
    with pytest.raises(LandscapeInputError, match="scalar batch-mean loss"):
        Hessian(nn.Linear(4, 3), nn.CrossEntropyLoss(reduction="none"), data())
    surface = Surface(nn.Linear(4, 3), nn.CrossEntropyLoss(), data())
    with pytest.raises(LandscapeInputError, match="steps must be odd"):
        surface.plane(steps=4)
    with pytest.raises(LandscapeInputError, match="radius must be positive"):
        surface.line(radius=0)
    with pytest.raises(LandscapeInputError, match="has no parameter 'bias'"):
        surface.interpolation({"weight": torch.zeros(3, 4)})
    with pytest.raises(LandscapeInputError, match="not the same architecture"):
        surface.interpolation(nn.Linear(4, 5).state_dict())
    with pytest.raises(LandscapeInputError, match="unknown Hessian backend"):
        Hessian(nn.Linear(4, 3), nn.CrossEntropyLoss(), data(), backend="hessian-eigenthings")  # type: ignore[arg-type]
    with pytest.raises(LandscapeInputError, match="pyhessian backend computes in the model's dtype"):
        Hessian(nn.Linear(4, 3), nn.CrossEntropyLoss(), data(), dtype=torch.float64, backend="pyhessian")
