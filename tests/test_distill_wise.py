"""WISE: weight fitting, early exit, MACs accounting by hand, wise.json."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flatkd.config import from_dict
from flatkd.distill.wise import (
    WiseConfig,
    WiseResult,
    early_exit,
    fit_weights,
    load_wise,
    release_order,
    run_wise,
    save_wise,
    stack_exits,
    step_costs,
)
from flatkd.errors import ConfigError, InputFileError

ORDER = ("mv:0", "mv:1", "iframe:0", "iframe:1")
MACS = {"mv": [1.0, 2.0], "iframe": [5.0, 9.0]}  # path to each exit, its own head included
HEADS = {"mv": [0.5, 0.25], "iframe": [1.0, 2.0]}  # each exit's head alone


def constructed_logits(n: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Four exits over 5 classes: weak, pure noise at a large scale (it swamps a plain sum),
    informative, and informative but squashed to a tiny scale (miscalibrated)."""
    labels = torch.randint(0, 5, (n,), generator=generator)
    onehot = F.one_hot(labels, 5).float()

    def noise(scale: float) -> torch.Tensor:
        return scale * torch.randn(n, 5, generator=generator)

    weak, loud_noise = 0.5 * onehot + noise(1.0), noise(10.0)
    informative, squashed = 3.0 * onehot + noise(1.0), 0.05 * (3.0 * onehot + noise(1.0))
    return {"mv": torch.stack([weak, loud_noise], 1), "iframe": torch.stack([informative, squashed], 1)}, labels


@pytest.fixture(scope="module")
def splits() -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (*constructed_logits(600, generator), *constructed_logits(600, generator))


@pytest.fixture(scope="module")
def fitted(splits: tuple) -> WiseResult:
    return run_wise(*splits, MACS, HEADS, WiseConfig(order=ORDER))


def test_fitted_weights_are_non_negative_and_use_only_exits_so_far(fitted: WiseResult) -> None:
    assert [len(row) for row in fitted.weights] == [1, 2, 3, 4]
    assert all(w >= 0.0 for row in fitted.weights for w in row)
    # the pure-noise exit is switched off in every step that can see something better
    assert fitted.weights[-1][1] < 0.05 * max(fitted.weights[-1])


def test_fitted_wise_beats_uniform_weights(splits: tuple, fitted: WiseResult) -> None:
    uniform = run_wise(*splits, MACS, HEADS, WiseConfig(order=ORDER, scaling=False))
    assert uniform.weights[-1] == (1.0, 1.0, 1.0, 1.0)
    # the loud noise exit swamps the plain sum; the fitted weights recover the informative exits
    assert fitted.step_accuracy[-1] >= uniform.step_accuracy[-1] + 0.4
    assert fitted.step_accuracy[-1] >= max(fitted.exit_accuracy) - 0.02
    assert fitted.at_tau.accuracy >= uniform.at_tau.accuracy + 0.4


def test_no_lateral_connections_weights_only_the_own_exit(splits: tuple) -> None:
    result = run_wise(*splits, MACS, HEADS, WiseConfig(order=ORDER, lateral=False))
    for k, row in enumerate(result.weights):
        assert all(w == 0.0 for w in row[:k]) and row[k] >= 0.0
        if row[k] > 0:  # z_k is a positive rescaling of exit k alone: the argmax cannot change
            assert result.step_accuracy[k] == result.exit_accuracy[k]
    assert result.weights[1][1] == 0.0  # pure noise is switched off (z = 0 predicts class 0)


def test_tau_one_is_the_last_step_at_full_cost_and_tau_zero_exits_at_step_one(fitted: WiseResult) -> None:
    by_tau = {p.tau: p for p in fitted.curve}
    assert by_tau[1.0].accuracy == fitted.step_accuracy[-1]
    # mv up to exit 1 + mv exit 0's head, iframe up to exit 1 + iframe exit 0's head
    assert by_tau[1.0].macs == fitted.step_macs[-1] == 2.0 + 0.5 + 9.0 + 1.0
    assert by_tau[1.0].exit_fractions == (0.0, 0.0, 0.0, 1.0)
    assert by_tau[0.0].accuracy == fitted.step_accuracy[0] == fitted.exit_accuracy[0]
    assert by_tau[0.0].macs == fitted.step_macs[0] == 1.0
    assert by_tau[0.0].exit_fractions == (1.0, 0.0, 0.0, 0.0)


def test_step_costs_by_hand() -> None:
    path = {"a": [10.0, 25.0], "b": [7.0]}  # backbone up to the exit + that exit's head
    heads = {"a": [3.0, 4.0], "b": [2.0]}
    # at step 2, a ran to exit 1 (25) and also evaluated exit 0's head (3)
    assert step_costs(["a:0", "a:1", "b:0"], path, heads).tolist() == [10.0, 28.0, 35.0]
    assert step_costs(["a:0", "b:0", "a:1"], path, heads).tolist() == [10.0, 17.0, 35.0]
    assert step_costs(["a:1", "a:0", "b:0"], path, heads).tolist() == [25.0, 28.0, 35.0]  # exit 1 first
    assert step_costs(["a:1", "b:0"], path, heads).tolist() == [25.0, 32.0]  # exit 0 never evaluated
    with pytest.raises(InputFileError, match="no MACs for exit b:1"):
        step_costs(["b:1"], path, heads)
    with pytest.raises(InputFileError, match="no head MACs for exit a:1"):
        step_costs(["a:1"], path, {"a": [3.0]})


def test_early_exit_accuracy_and_mean_cost_by_hand() -> None:
    # Three clips, three steps, two classes. Softmax confidence of logits (x, 0) is 1/(1+e^-x):
    # x = 0 -> 0.5, x = 5 -> 0.9933. With tau = 0.9: clip 0 exits at step 0, clip 1 at step 1, clip 2
    # never gets confident and answers at the last step.
    z = torch.tensor(
        [
            [[5.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 5.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.1], [0.2, 0.0]],
        ]
    )
    labels = torch.tensor([0, 0, 0])  # right, wrong, right
    costs = torch.tensor([10.0, 25.0, 32.0], dtype=torch.float64)
    point = early_exit(z, labels, costs, tau=0.9)
    assert point.exit_fractions == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert point.accuracy == pytest.approx(2 / 3)
    assert point.macs == pytest.approx((10 + 25 + 32) / 3)


def test_one_exit_weight_matches_a_direct_minimisation_of_the_objective() -> None:
    generator = torch.Generator().manual_seed(3)
    labels = torch.arange(200) % 4
    logits = 0.7 * F.one_hot(labels, 4).double() + torch.randn(200, 4, generator=generator, dtype=torch.float64)
    w = fit_weights(logits[:, None], labels, alpha=0.05)[0, 0].item()

    def objective(v: float) -> float:
        return F.cross_entropy(v * logits, labels).item() + 0.05 * abs(v)

    # CE(v * l) + alpha |v| is convex in v: ternary search on [0, 10] brackets its minimum.
    low, high = 0.0, 10.0
    for _ in range(100):
        a, b = low + (high - low) / 3, high - (high - low) / 3
        low, high = (low, b) if objective(a) < objective(b) else (a, high)
    assert 0.1 < low < 9.9
    assert w == pytest.approx(low, abs=1e-3)


def test_release_order_and_order_errors(splits: tuple) -> None:
    order = release_order({"iframe": 2, "mv": 1, "residual": 2})
    assert order == ("residual:0", "residual:1", "mv:0", "iframe:0", "iframe:1")
    with pytest.raises(ConfigError, match="has 2 exits"):
        stack_exits(splits[0], ["mv:2"])
    with pytest.raises(ConfigError, match="no residual logits"):
        stack_exits(splits[0], ["residual:0"])
    with pytest.raises(ConfigError, match="bad exit name"):
        stack_exits(splits[0], ["mv-0"])
    with pytest.raises(ConfigError, match="no exits"):
        stack_exits(splits[0], [])


@pytest.mark.parametrize("settings", [{"alpha": -0.1}, {"lr": 0.0}, {"iterations": 0}, {"taus": [0.5, 1.5]}])
def test_bad_wise_settings_are_config_errors(settings: dict) -> None:
    with pytest.raises(ConfigError, match="wise"):
        from_dict(WiseConfig, settings)


def test_wise_json_round_trip_and_errors(tmp_path: Path, fitted: WiseResult, splits: tuple) -> None:
    uniform = run_wise(*splits, MACS, HEADS, WiseConfig(order=ORDER, scaling=False, iterations=1))
    save_wise(tmp_path / "wise.json", {"pkd": fitted, "pkd-no-scaling": uniform})
    assert load_wise(tmp_path / "wise.json") == {"pkd": fitted, "pkd-no-scaling": uniform}
    with pytest.raises(InputFileError, match=rf"flatkd wise --run {tmp_path}"):
        load_wise(tmp_path / "missing" / "wise.json")
    (tmp_path / "wise.json").write_text('{"pkd": {"order": ["mv:0"]}}')
    with pytest.raises(InputFileError, match="malformed WISE result"):
        load_wise(tmp_path / "wise.json")
    (tmp_path / "wise.json").write_text('["pkd"]')
    with pytest.raises(InputFileError, match="malformed WISE result"):
        load_wise(tmp_path / "wise.json")
