"""WISE: weight fitting, early exit, MACs accounting by hand, the data-driven tau sweep, the
controls (late fusion, uniform sum) with their paired comparisons, wise.json and the run outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from flatkd.config import from_dict
from flatkd.distill.wise import (
    WiseConfig,
    WiseResult,
    control_points,
    early_exit,
    final_exits,
    fit_fusion_weights,
    fit_weights,
    fixed_ensemble,
    load_wise,
    release_order,
    run_wise,
    save_wise,
    simplex_grid,
    stack_exits,
    step_costs,
    tau_grid,
)
from flatkd.errors import ConfigError, InputFileError
from flatkd.plots.distill import wise_tradeoff_figure
from flatkd.runs.figure_data import wise_control_frame, wise_frames
from flatkd.runs.methods import get_method
from flatkd.runs.rundir import RunDir
from flatkd.runs.wise import wise_for_run

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


@pytest.mark.parametrize(
    "settings",
    [{"alpha": -0.1}, {"lr": 0.0}, {"iterations": 0}, {"taus": [0.5, 1.5]}, {"tau_points": 1}, {"fusion_resolution": 0}],
)
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


# ---- controls, the data-driven tau sweep, paired comparisons -----------------------------------


def test_fixed_ensemble_and_late_fusion_equal_a_hand_computation() -> None:
    # two clips, two heads, two classes; CoViAR's 2:1 would weight head 0 twice
    stacked = torch.tensor([[[1.0, 0.0], [0.0, 3.0]], [[2.0, 0.0], [0.0, 1.0]]])
    assert fixed_ensemble(stacked, (2.0, 1.0)).tolist() == [[2.0, 3.0], [4.0, 1.0]]
    assert fixed_ensemble(stacked, (0.5, 0.5)).tolist() == [[0.5, 1.5], [1.0, 0.5]]
    logits = {"iframe": stacked[:, :1], "mv": stacked[:, 1:]}  # one exit each: the final heads
    labels = torch.tensor([0, 0])
    ensembles = {"fusion-coviar": (("iframe:0", "mv:0"), (2.0, 1.0)), "fusion-equal": (("iframe:0", "mv:0"), (0.5, 0.5))}
    wise_correct = torch.tensor([True, False])
    macs, heads = {"iframe": [7.0], "mv": [3.0]}, {"iframe": [1.0], "mv": [1.0]}
    coviar, equal = control_points(ensembles, logits, labels, wise_correct, macs, heads)
    assert (coviar.accuracy, equal.accuracy) == (0.5, 0.5)  # clip 1 right (4 > 1), clip 0 wrong (2 < 3)
    assert coviar.macs == equal.macs == 10.0  # both networks to their end
    assert (coviar.versus_wise.a_only, coviar.versus_wise.b_only) == (1, 1)  # WISE: clip 0 only
    assert coviar.versus_wise.difference.estimate == 0.0 and coviar.versus_wise.p_value == 1.0


def test_simplex_grid_holds_equal_and_coviar_weights() -> None:
    grid = simplex_grid(3, 12)
    assert grid.shape == (91, 3)  # C(14, 2)
    torch.testing.assert_close(grid.sum(dim=1), torch.ones(91, dtype=torch.float64))
    rows = {tuple(round(v, 6) for v in row) for row in grid.tolist()}
    assert (round(1 / 3, 6),) * 3 in rows and (0.5, 0.25, 0.25) in rows
    assert simplex_grid(1, 12).tolist() == [[1.0]]


def test_fitted_fusion_is_at_least_as_good_as_equal_weights_on_validation(splits: tuple) -> None:
    fit_logits, fit_labels = splits[0], splits[1]
    finals = final_exits(fit_logits)
    assert finals == ("mv:1", "iframe:1")  # the loud-noise exit and the squashed informative one
    stacked = stack_exits(fit_logits, finals)
    fitted = fit_fusion_weights(stacked, fit_labels, resolution=12)
    assert sum(fitted) == pytest.approx(1.0) and all(w >= 0 for w in fitted)
    # the noise head is 200x louder: equal weights follow the noise, the fit turns it off
    assert accuracy_of(stacked, fitted, fit_labels) >= accuracy_of(stacked, (0.5, 0.5), fit_labels) + 0.3
    assert fitted[0] == 0.0
    # two informative heads of similar quality: the fit still never loses to equal weights on val
    mixed = stack_exits(fit_logits, ["mv:0", "iframe:0"])
    fitted = fit_fusion_weights(mixed, fit_labels, resolution=12)
    assert accuracy_of(mixed, fitted, fit_labels) >= accuracy_of(mixed, (0.5, 0.5), fit_labels)


def accuracy_of(stacked: torch.Tensor, weights: tuple[float, ...], labels: torch.Tensor) -> float:
    """Accuracy of the fixed ensemble ``sum_j weights[j] stacked[:, j]``."""
    return (fixed_ensemble(stacked, weights).argmax(-1) == labels).double().mean().item()


def test_tau_grid_spans_everything_at_the_first_exit_to_nothing_early() -> None:
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (200,), generator=generator)
    # confidence grows with depth and with the clip's margin: a cascade where early exits happen
    margin = torch.rand(200, 1, 1, generator=generator) * torch.arange(1, 5).double()[None, :, None]
    z = 4 * margin * F.one_hot(labels, 3).double()[:, None] + torch.randn(200, 4, 3, generator=generator, dtype=torch.float64)
    taus = tau_grid(z, points=10, extra=(0.75,))
    assert taus[0] == 0.0 and taus[-1] == 1.0 and 0.75 in taus and list(taus) == sorted(set(taus))
    costs = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    points = [early_exit(z, labels, costs, t) for t in taus]
    assert points[0].exit_fractions[0] == 1.0  # everything at the first exit
    assert any(0 < p.exit_fractions[-1] < 1 for p in points)  # some clips exit early, not all
    none_early = [p for p in points if p.exit_fractions[-1] == 1.0]
    assert none_early and none_early[0].tau < 1.0  # the largest observed confidence already stops none
    assert len({p.exit_fractions for p in points}) >= 8  # the thresholds change the exit pattern


def test_run_wise_compares_wise_with_every_control(splits: tuple, fitted: WiseResult) -> None:
    names = [c.name for c in fitted.controls]
    assert names == ["best-exit", "fusion-equal", "fusion-coviar", "fusion-fitted", "uniform-sum"]
    controls = {c.name: c for c in fitted.controls}
    best = fitted.best_exit()
    assert controls["best-exit"].exits == (fitted.order[best],)
    assert controls["best-exit"].accuracy == fitted.exit_accuracy[best]
    assert controls["fusion-coviar"].weights == (1.0, 2.0)  # mv 1, iframe 2
    assert controls["fusion-equal"].macs == MACS["mv"][1] + MACS["iframe"][1]
    # uniform sum of all four exits is WISE without scaling at tau 1 with the same order
    uniform = run_wise(*splits, MACS, HEADS, WiseConfig(order=ORDER, scaling=False, iterations=1))
    assert controls["uniform-sum"].accuracy == uniform.step_accuracy[-1]
    assert controls["uniform-sum"].macs == fitted.step_macs[-1]
    for control in fitted.controls:
        paired = control.versus_wise
        assert (paired.accuracy_a, paired.accuracy_b) == (fitted.at_tau.accuracy, control.accuracy)
        assert paired.difference.low <= paired.difference.estimate <= paired.difference.high
    # the loud noise swamps the uniform sum: WISE's gain over it is resolved
    assert controls["uniform-sum"].versus_wise.difference.low > 0.2
    assert controls["uniform-sum"].versus_wise.p_value < 1e-6


def test_wise_for_run_writes_the_controls_to_every_output(tmp_path: Path, splits: tuple) -> None:
    run = RunDir(tmp_path / "run")
    fit_logits, fit_labels, test_logits, test_labels = splits
    for modality in fit_logits:
        run.set_section(["train", modality], {})
        run.update_macs(modality, [int(m - h) for m, h in zip(MACS[modality], HEADS[modality])], HEADS[modality])
        for split, logits, labels in (("val", fit_logits, fit_labels), ("test", test_logits, test_labels)):
            run.save_logits("ic-ce", modality, split, logits[modality], labels)
    name, result, written = wise_for_run(run, get_method("ce"), WiseConfig())
    assert name == "ce" and run.wise_controls_path in written
    assert load_wise(run.wise_path)["ce"].controls == result.controls
    table = pd.read_csv(run.wise_controls_path)
    assert list(table["control"]) == [c.name for c in result.controls]
    fitted = table.set_index("control").loc["fusion-fitted"]
    assert fitted["accuracy"] == pytest.approx(result.controls[3].accuracy)
    assert fitted["difference"] == pytest.approx(100 * result.controls[3].versus_wise.difference.estimate)
    assert fitted["mcnemar_p"] == pytest.approx(result.controls[3].versus_wise.p_value)
    markdown = run.distill_markdown_path.read_text()
    assert "late fusion, fitted on val" in markdown and "McNemar p" in markdown
    assert result.controls[3].versus_wise.difference.format(scale=100) in markdown
    figure = wise_tradeoff_figure(*wise_frames({"WISE": result}), controls=wise_control_frame({"WISE": result}))
    labels = {line.get_label() for line in figure.axes[0].get_legend().get_lines()}
    assert {"late fusion, equal", "late fusion, CoViAR 2:1:1", "uniform sum of all exits"} <= labels
