"""WISE: weighted inference with a scaled ensemble of early exits, and its cost/accuracy trade-off.

Soufleri, Ravikumar & Roy, "Advancing Compressed Video Action Recognition through Progressive
Knowledge Distillation" (arXiv 2407.02713, 2024), Sec. "WISE"; release
github.com/Efstathia-Soufleri/PKD (``COVIAR_backbone/wise_*.py``).

Exits of the modality networks are visited in a cascade order ``e_1, ..., e_S`` (the release: the
residual exits, the MV exits, then the I-frame exits; exits are named ``"modality:index"``). With
``l_j`` the logits of exit ``e_j``, step ``k`` predicts with

    z_k = sum_{j <= k} w_kj * l_j,          w_kj >= 0,

one weight vector per step over all exits computed so far. Each ``w_k`` minimises, over the
VALIDATION split (the release fits on the training logits; flatkd keeps the training split out),

    CE(z_k, y) + alpha * ||w_k||_1

by full-batch SGD (lr 0.1, 500 iterations, initialised at 1) with negative weights clamped to 0
after every step. The steps are independent problems; they are fitted together by minimising the
sum of their objectives, which gives each ``w_k`` exactly its own gradient.

Ablations: ``scaling=False`` fixes every weight at 1 (plain cumulative sum of logits, "uniform
weights"); ``lateral=False`` keeps only the step's own exit, ``z_k = w_k * l_k``.

Early exit: a clip stops at the first step with ``max softmax(z_k) > tau`` (the last step always
answers). Cost: ``exit_macs[m][i]`` are the MACs per clip of the path to exit ``i`` of
network ``m``, its own head included, and ``head_macs[m][i]`` those of exit ``i``'s head alone
(``macs.json``: ``RunDir.read_macs``, ``RunDir.read_head_macs``). The cascade runs each network
only as deep as the deepest of its exits visited so far and evaluates the head of every visited
exit, so stopping at step ``k`` costs

    C_k = sum_m ( exit_macs[m][d_m(k)] + sum_{i in V_m(k), i != d_m(k)} head_macs[m][i] ),

``V_m(k)`` being the exits of ``m`` among ``e_1..e_k`` and ``d_m(k)`` the deepest of them (the
backbone up to ``d_m(k)`` once, plus every visited head); the increment of a step is the marginal
cost of its exit. A sweep over ``tau`` traces accuracy against mean MACs per clip.

Thresholds: softmax confidences of fitted cascades sit very close to 1 (on the first demo no clip
passed ``tau = 0.999999`` before the last step), so a fixed grid of "round" thresholds leaves the
curve a single point. The sweep is chosen from the data instead (:func:`tau_grid`): ``0`` (every
clip answers at the first step), ``1`` (no clip exits early: a softmax never exceeds 1), and the
``q``-quantiles of the observed confidences ``max softmax(z_k)`` of every step but the last on the
VALIDATION split, for ``q`` evenly spaced in [0, 1]; the largest is the largest confidence seen,
at which no validation clip exits early either. Each threshold between two observed confidences
gives a different exit pattern.

Controls (:func:`control_points`): what WISE must beat is not one exit but the ensembles it is
built from, each a fixed weighted sum of exit logits, one accuracy-vs-MACs point each:

- ``best-exit``: the most accurate single exit of the cascade on the evaluation split (chosen on
  that split, which favours the control);
- late fusion of the networks' final heads, ``z = sum_m v_m l_m^final``, as CoViAR fuses its three
  networks (Wu et al., "Compressed Video Action Recognition", CVPR 2018; github.com/chaoyuaw/
  pytorch-coviar ``combine.py`` sums the raw, segment-averaged scores with ``--wi 2 --wm 1 --wr 1``):
  ``fusion-equal`` (``v_m = 1/M``), ``fusion-coviar`` (I-frame 2, MV 1, residual 1) and
  ``fusion-fitted`` (:func:`fit_fusion_weights`: the point of the simplex grid
  ``{v : v_m = c_m / r, sum c_m = r}`` plus equal weights with the highest validation accuracy,
  ties broken by the lower validation cross-entropy; ``r = fusion_resolution``);
- ``uniform-sum``: every exit of every network with weight 1.

Each costs the MACs of evaluating its exits together (:func:`step_costs` of its exits, last step).
WISE at its operating point ``tau`` is compared with each on the same evaluation clips by the
paired bootstrap interval of the accuracy difference and McNemar's exact test
(:func:`flatkd.stats.compare_paired`), difference = WISE - control.

Differences from the release: no division of ``z_k`` by ``k`` (the fitted weights already set the
scale that the confidence threshold sees), one ``alpha`` for all steps (the release uses 0 for the
first steps and 0.1 later), and the last step weights all exits (the release's last step fuses
only the three final heads with separately tuned weights; the L1 term can zero the rest).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from flatkd.errors import ConfigError, InputFileError
from flatkd.fileio import read_json, write_json
from flatkd.progress import ProgressFactory, no_progress
from flatkd.stats import Interval, PairedComparison, compare_paired

#: Modality order of the release's cascade.
RELEASE_MODALITY_ORDER = ("residual", "mv", "iframe")
#: CoViAR's late-fusion weights of the final heads (pytorch-coviar ``combine.py`` defaults).
COVIAR_WEIGHTS = {"iframe": 2.0, "mv": 1.0, "residual": 1.0}
#: How tables and figures name the controls of :func:`control_points`.
CONTROL_LABELS = {
    "best-exit": "best single exit",
    "fusion-equal": "late fusion, equal",
    "fusion-coviar": "late fusion, CoViAR 2:1:1",
    "fusion-fitted": "late fusion, fitted on val",
    "uniform-sum": "uniform sum of all exits",
}


@dataclass(frozen=True)
class WiseConfig:
    """WISE settings. ``order``: exit names in cascade order (empty: the release order over the
    exits present); ``tau``: the threshold reported as the operating point; ``tau_points``: how
    many validation-confidence quantiles the sweep uses (:func:`tau_grid`); ``taus``: thresholds
    added to that sweep; ``fusion_resolution``: the simplex grid of the fitted late fusion;
    ``view``: which logits the run layer reads (``train``: the training-time view, or a test
    protocol such as ``25x10``; ``None``: the protocol every network has, else ``train``)."""

    order: tuple[str, ...] = ()
    alpha: float = 0.01
    lr: float = 0.1
    iterations: int = 500
    scaling: bool = True
    lateral: bool = True
    tau: float = 0.999999
    tau_points: int = 24
    taus: tuple[float, ...] = ()
    fusion_resolution: int = 12
    view: str | None = None

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.lr <= 0 or self.iterations < 1:
            got = f"alpha={self.alpha}, lr={self.lr}, iterations={self.iterations}"
            raise ConfigError(f"wise: need alpha >= 0, lr > 0 and iterations >= 1, got {got}")
        if self.tau_points < 2 or self.fusion_resolution < 1:
            got = f"tau_points={self.tau_points}, fusion_resolution={self.fusion_resolution}"
            raise ConfigError(f"wise: need tau_points >= 2 and fusion_resolution >= 1, got {got}")
        if not all(0.0 <= t <= 1.0 for t in (self.tau, *self.taus)):
            raise ConfigError("wise: thresholds tau and taus must lie in [0, 1]")


def parse_exit(name: str) -> tuple[str, int]:
    """``"mv:2"`` -> ``("mv", 2)``."""
    modality, sep, index = name.partition(":")
    if not sep or not index.isdigit():
        raise ConfigError(f"wise.order: bad exit name {name!r} (expected 'modality:index', e.g. 'mv:2')")
    return modality, int(index)


def release_order(exits_per_modality: Mapping[str, int]) -> tuple[str, ...]:
    """The release's cascade over the given networks: residual, MV, then I-frame exits."""
    return tuple(
        f"{m}:{i}" for m in RELEASE_MODALITY_ORDER if m in exits_per_modality for i in range(exits_per_modality[m])
    )


def stack_exits(logits: Mapping[str, torch.Tensor], order: Sequence[str]) -> torch.Tensor:
    """Exit logits in cascade order, [N, S, K] float64, from ``logits[modality]`` [N, E, K]."""
    if not order:
        raise ConfigError("wise: the cascade has no exits (no logits, or an empty wise.order)")
    columns = []
    for name in order:
        modality, index = parse_exit(name)
        if modality not in logits:
            raise ConfigError(f"wise.order names {name} but there are no {modality} logits")
        if index >= logits[modality].shape[1]:
            exits = logits[modality].shape[1]
            raise ConfigError(f"wise.order names {name} but the {modality} network has {exits} exits")
        columns.append(logits[modality][:, index])
    shapes = {tuple(c.shape) for c in columns}
    if len(shapes) != 1:
        raise InputFileError(f"exit logits disagree in shape: {sorted(shapes)}")
    return torch.stack(columns, dim=1).double()


def weight_mask(steps: int, lateral: bool) -> torch.Tensor:
    """[S, S] 0/1 mask of the weights each step may use: its exits so far, or its own exit only."""
    ones = torch.ones(steps, steps, dtype=torch.float64)
    return torch.tril(ones) if lateral else torch.eye(steps, dtype=torch.float64)


def fit_weights(
    stacked: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float = 0.01,
    lr: float = 0.1,
    iterations: int = 500,
    lateral: bool = True,
    progress: ProgressFactory = no_progress,
) -> torch.Tensor:
    """Fit the [S, S] step weights (row k: step k) on ``stacked`` [N, S, K] and ``labels`` [N]."""
    n, steps, classes = stacked.shape
    mask = weight_mask(steps, lateral)
    exits = stacked.transpose(0, 1).reshape(steps, n * classes)  # step-major: one GEMM per iteration
    targets = labels.repeat(steps)
    weights = mask.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weights], lr=lr)
    with progress(total=iterations, desc="WISE weights") as bar:
        for _ in range(iterations):
            optimizer.zero_grad()
            z = ((weights * mask) @ exits).reshape(steps * n, classes)
            # mean over all S*N rows times S = sum over steps of each step's mean CE
            loss = steps * F.cross_entropy(z, targets) + alpha * (weights * mask).abs().sum()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                weights.clamp_(min=0.0)
            bar.update(1)
    return (weights * mask).detach()


def cascade_logits(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``z[:, k] = sum_j weights[k, j] * stacked[:, j]``: [N, S, K]."""
    return torch.einsum("kj,njc->nkc", weights, stacked)


def step_costs(
    order: Sequence[str],
    exit_macs: Mapping[str, Sequence[float]],
    head_macs: Mapping[str, Sequence[float]],
) -> torch.Tensor:
    """MACs per clip of stopping at each step of the cascade (see the module docstring).

    ``exit_macs[m][i]``: the path to exit ``i`` of network ``m`` including exit ``i``'s own head;
    ``head_macs[m][i]``: exit ``i``'s head alone, charged for every visited exit that is not its
    network's deepest one so far.
    """
    visited: dict[str, set[int]] = {}
    costs = []
    for name in order:
        modality, index = parse_exit(name)
        for table, what in ((exit_macs, "MACs"), (head_macs, "head MACs")):
            if index >= len(table.get(modality, ())):
                raise InputFileError(f"no {what} for exit {name}: re-run `flatkd evaluate` for the {modality} network")
        visited.setdefault(modality, set()).add(index)
        cost = 0.0
        for m, seen in visited.items():
            deepest = max(seen)
            cost += float(exit_macs[m][deepest]) + sum(float(head_macs[m][j]) for j in seen if j != deepest)
        costs.append(cost)
    return torch.tensor(costs, dtype=torch.float64)


@dataclass(frozen=True)
class ExitPoint:
    """Early-exit inference at one threshold: accuracy, mean MACs per clip, share of clips
    answered at each step."""

    tau: float
    accuracy: float
    macs: float
    exit_fractions: tuple[float, ...]


def confidences(z: torch.Tensor) -> torch.Tensor:
    """``max softmax(z_k)`` of every clip and step: [N, S] float64 from ``z`` [N, S, K]."""
    return F.softmax(z.double(), dim=-1).amax(dim=-1)


def exit_decisions(z: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The step each clip stops at (the first with confidence > ``tau``; the last always answers)
    and its prediction there: two [N] integer tensors."""
    confident = confidences(z) > tau
    confident[:, -1] = True
    step = confident.int().argmax(dim=1)
    return step, z[torch.arange(z.shape[0]), step].argmax(dim=-1)


def early_exit(z: torch.Tensor, labels: torch.Tensor, costs: torch.Tensor, tau: float) -> ExitPoint:
    """Stop each clip at the first step whose max softmax of ``z`` [N, S, K] exceeds ``tau``."""
    step, prediction = exit_decisions(z, tau)
    fractions = torch.bincount(step, minlength=z.shape[1]).double() / z.shape[0]
    return ExitPoint(
        tau=float(tau),
        accuracy=(prediction == labels).double().mean().item(),
        macs=costs[step].mean().item(),
        exit_fractions=tuple(fractions.tolist()),
    )


def tau_grid(z: torch.Tensor, points: int, extra: Sequence[float] = ()) -> tuple[float, ...]:
    """Thresholds of the sweep from the confidences of ``z`` [N, S, K] (validation logits of the
    fitted cascade): 0, 1, ``extra`` and the ``q``-quantiles (``q = 0, 1/(points-1), ..., 1``,
    observed values, no interpolation) of ``max softmax(z_k)`` over clips and every step but the
    last. 0 stops every clip at the first step; 1 and the largest quantile stop none early."""
    early = confidences(z)[:, :-1].flatten()
    observed = torch.quantile(early, torch.linspace(0, 1, points, dtype=torch.float64), interpolation="lower")
    return tuple(sorted({0.0, 1.0, *map(float, extra), *(observed.tolist() if early.numel() else ())}))


def fixed_ensemble(stacked: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """``z = sum_j weights[j] * stacked[:, j]``: [N, K] from ``stacked`` [N, S, K]."""
    return torch.einsum("j,njc->nc", torch.as_tensor(weights, dtype=torch.float64), stacked.double())


def _compositions(parts: int, total: int) -> list[tuple[int, ...]]:
    """Every tuple of ``parts`` non-negative integers summing to ``total``."""
    if parts == 1:
        return [(total,)]
    return [(first, *rest) for first in range(total + 1) for rest in _compositions(parts - 1, total - first)]


def simplex_grid(parts: int, resolution: int) -> torch.Tensor:
    """Every ``v`` with ``v_m = c_m / resolution``, integers ``c_m >= 0`` summing to ``resolution``:
    [C(resolution + parts - 1, parts - 1), parts] float64."""
    return torch.tensor(_compositions(parts, resolution), dtype=torch.float64) / resolution


def fit_fusion_weights(stacked: torch.Tensor, labels: torch.Tensor, resolution: int = 12) -> tuple[float, ...]:
    """Late-fusion weights on the simplex for the heads of ``stacked`` [N, M, K]: the candidate
    (the :func:`simplex_grid` at ``resolution`` and the equal weights ``1/M``) with the highest
    accuracy of ``sum_m v_m l_m`` on ``labels``, ties broken by the lower mean cross-entropy, then
    by grid order. The equal weights are a candidate, so the fit is never worse than them on the
    data it is fitted on."""
    heads = stacked.shape[1]
    candidates = torch.cat([torch.full((1, heads), 1.0 / heads, dtype=torch.float64), simplex_grid(heads, resolution)])
    fused = torch.einsum("gm,nmc->gnc", candidates, stacked.double())
    accuracy = (fused.argmax(dim=-1) == labels).double().mean(dim=1)
    loss = F.cross_entropy(fused.transpose(1, 2), labels.expand(len(candidates), -1), reduction="none").mean(dim=1)
    best = min(range(len(candidates)), key=lambda g: (-accuracy[g].item(), loss[g].item(), g))
    return tuple(candidates[best].tolist())


def most_accurate(accuracy: Sequence[float], macs: Sequence[float]) -> int:
    """Index of the highest accuracy, the lower MACs on a tie."""
    return max(range(len(accuracy)), key=lambda k: (accuracy[k], -macs[k]))


@dataclass(frozen=True)
class ControlPoint:
    """A fixed ensemble WISE is compared with (module docstring): its exits and weights,
    accuracy and MACs per clip on the evaluation split, and ``versus_wise``: WISE at its
    operating point (a) against this control (b) on the same clips."""

    name: str
    exits: tuple[str, ...]
    weights: tuple[float, ...]
    accuracy: float
    macs: float
    versus_wise: PairedComparison

    @property
    def label(self) -> str:
        """The name tables and figures show (:data:`CONTROL_LABELS`)."""
        return CONTROL_LABELS.get(self.name, self.name)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ControlPoint:
        """Rebuild from ``dataclasses.asdict`` output."""
        paired = dict(obj["versus_wise"])
        paired["difference"] = Interval(**{k: float(v) for k, v in paired["difference"].items()})
        return cls(
            name=str(obj["name"]),
            exits=tuple(str(e) for e in obj["exits"]),
            weights=tuple(float(w) for w in obj["weights"]),
            accuracy=float(obj["accuracy"]),
            macs=float(obj["macs"]),
            versus_wise=PairedComparison(**paired),
        )


@dataclass(frozen=True)
class WiseResult:
    """One WISE variant of ``wise.json``: the cascade, its weights (row ``k``: weights of exits
    ``0..k``), the operating point at ``tau``, the sweep, per-step/per-exit references on the
    evaluation split (accuracy of every ``z_k`` without early exit, of every exit alone, and
    their costs) and the controls with their paired comparisons (none in files written before
    the controls existed)."""

    order: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    scaling: bool
    lateral: bool
    alpha: float
    tau: float
    at_tau: ExitPoint
    curve: tuple[ExitPoint, ...]
    step_accuracy: tuple[float, ...]
    step_macs: tuple[float, ...]
    exit_accuracy: tuple[float, ...]
    exit_macs: tuple[float, ...]
    controls: tuple[ControlPoint, ...] = ()

    def best_exit(self) -> int:
        """Cascade position of the most accurate single exit (the cheaper one on a tie)."""
        return most_accurate(self.exit_accuracy, self.exit_macs)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> WiseResult:
        """Rebuild from :meth:`to_json` output; raises ``ValueError`` on a malformed object."""
        try:
            fields = dict(obj)
            fields["order"] = tuple(str(e) for e in fields["order"])
            fields["weights"] = tuple(tuple(float(w) for w in row) for row in fields["weights"])
            fields["at_tau"] = _exit_point(fields["at_tau"])
            fields["curve"] = tuple(_exit_point(p) for p in fields["curve"])
            for key in ("step_accuracy", "step_macs", "exit_accuracy", "exit_macs"):
                fields[key] = tuple(float(v) for v in fields[key])
            fields["controls"] = tuple(ControlPoint.from_json(c) for c in fields.get("controls", ()))
            result = cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None
        steps = len(result.order)
        if [len(r) for r in result.weights] != list(range(1, steps + 1)):
            raise ValueError("weights must have one row per step, row k holding k+1 weights")
        return result


def _exit_point(obj: Mapping[str, Any]) -> ExitPoint:
    return ExitPoint(
        float(obj["tau"]), float(obj["accuracy"]), float(obj["macs"]), tuple(float(f) for f in obj["exit_fractions"])
    )


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).double().mean().item()


def final_exits(logits: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """The last exit (the network's own head) of every network, e.g. ``("iframe:3", "mv:3")``."""
    return tuple(f"{m}:{t.shape[1] - 1}" for m, t in logits.items())


def all_exits(logits: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """Every exit of every network, network by network, earliest first."""
    return tuple(f"{m}:{i}" for m, t in logits.items() for i in range(t.shape[1]))


def control_ensembles(
    fit_logits: Mapping[str, torch.Tensor], fit_labels: torch.Tensor, best_exit: str, resolution: int
) -> dict[str, tuple[tuple[str, ...], tuple[float, ...]]]:
    """The controls of the module docstring as ``name -> (exits, weights)``; ``fusion-fitted``
    is fitted on ``fit_*`` (:func:`fit_fusion_weights`)."""
    finals = final_exits(fit_logits)
    coviar = tuple(COVIAR_WEIGHTS.get(parse_exit(e)[0], 1.0) for e in finals)
    fitted = fit_fusion_weights(stack_exits(fit_logits, finals), fit_labels, resolution)
    everything = all_exits(fit_logits)
    return {
        "best-exit": ((best_exit,), (1.0,)),
        "fusion-equal": (finals, (1.0 / len(finals),) * len(finals)),
        "fusion-coviar": (finals, coviar),
        "fusion-fitted": (finals, fitted),
        "uniform-sum": (everything, (1.0,) * len(everything)),
    }


def control_points(
    ensembles: Mapping[str, tuple[tuple[str, ...], tuple[float, ...]]],
    eval_logits: Mapping[str, torch.Tensor],
    eval_labels: torch.Tensor,
    wise_correct: torch.Tensor,
    exit_macs: Mapping[str, Sequence[float]],
    head_macs: Mapping[str, Sequence[float]],
) -> tuple[ControlPoint, ...]:
    """Score every ensemble (``name -> (exits, weights)``) on the evaluation split and compare
    WISE's per-clip correctness ``wise_correct`` [N] with it (:func:`flatkd.stats.compare_paired`)."""
    points = []
    for name, (exits, weights) in ensembles.items():
        correct = fixed_ensemble(stack_exits(eval_logits, exits), weights).argmax(dim=-1) == eval_labels
        points.append(
            ControlPoint(
                name=name,
                exits=tuple(exits),
                weights=tuple(weights),
                accuracy=correct.double().mean().item(),
                macs=step_costs(exits, exit_macs, head_macs)[-1].item(),
                versus_wise=compare_paired(wise_correct.numpy(), correct.numpy()),
            )
        )
    return tuple(points)


def run_wise(
    fit_logits: Mapping[str, torch.Tensor],
    fit_labels: torch.Tensor,
    eval_logits: Mapping[str, torch.Tensor],
    eval_labels: torch.Tensor,
    exit_macs: Mapping[str, Sequence[float]],
    head_macs: Mapping[str, Sequence[float]],
    config: WiseConfig = WiseConfig(),
    progress: ProgressFactory = no_progress,
) -> WiseResult:
    """Fit WISE on ``fit_*`` (the validation split) and evaluate it on ``eval_*`` (the test
    split), beside its controls (:func:`control_ensembles`, fitted on ``fit_*``). Logits per
    modality are [N, E, K]; labels [N]; MACs as in :func:`step_costs`. The tau sweep comes from
    the validation confidences (:func:`tau_grid`)."""
    order = config.order or release_order({m: t.shape[1] for m, t in fit_logits.items()})
    fit_stack = stack_exits(fit_logits, order)
    eval_stack = stack_exits(eval_logits, order)
    if config.scaling:
        weights = fit_weights(
            fit_stack,
            fit_labels,
            alpha=config.alpha,
            lr=config.lr,
            iterations=config.iterations,
            lateral=config.lateral,
            progress=progress,
        )
    else:
        weights = weight_mask(len(order), config.lateral)
    z = cascade_logits(eval_stack, weights)
    costs = step_costs(order, exit_macs, head_macs)
    standalone = [float(exit_macs[m][i]) for m, i in map(parse_exit, order)]
    exit_accuracy = [_accuracy(eval_stack[:, k], eval_labels) for k in range(len(order))]
    best = most_accurate(exit_accuracy, standalone)
    taus = tau_grid(cascade_logits(fit_stack, weights), config.tau_points, config.taus)
    ensembles = control_ensembles(fit_logits, fit_labels, order[best], config.fusion_resolution)
    wise_correct = exit_decisions(z, config.tau)[1] == eval_labels
    return WiseResult(
        order=tuple(order),
        weights=tuple(tuple(weights[k, : k + 1].tolist()) for k in range(len(order))),
        scaling=config.scaling,
        lateral=config.lateral,
        alpha=config.alpha,
        tau=config.tau,
        at_tau=early_exit(z, eval_labels, costs, config.tau),
        curve=tuple(early_exit(z, eval_labels, costs, t) for t in taus),
        step_accuracy=tuple(_accuracy(z[:, k], eval_labels) for k in range(len(order))),
        step_macs=tuple(costs.tolist()),
        exit_accuracy=tuple(exit_accuracy),
        exit_macs=tuple(standalone),
        controls=control_points(ensembles, eval_logits, eval_labels, wise_correct, exit_macs, head_macs),
    )


def _non_finite(obj: Any, where: str = "") -> str | None:
    """The first place in a JSON-like tree holding NaN or an infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "value"
    if isinstance(obj, Mapping):
        obj = {str(k): v for k, v in obj.items()}
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if where else key)
        if found:
            return found
    return None


def save_wise(path: str | os.PathLike[str], results: Mapping[str, WiseResult]) -> None:
    """Write ``wise.json`` (variant name -> result) atomically; a result with NaN or infinite
    numbers (weights fitted on diverged logits) is refused, and nothing is written."""
    obj = {tag: result.to_json() for tag, result in results.items()}
    bad = _non_finite(obj)
    if bad:
        raise InputFileError(
            f"WISE produced a non-finite number at {bad} (NaN or inf): the logits it was fitted on come from"
            " a diverged network; retrain that network (`flatkd train`/`flatkd distill` into a new --run with a"
            " lower learning rate), then run `flatkd wise` again"
        )
    write_json(path, obj)


def load_wise(path: str | os.PathLike[str]) -> dict[str, WiseResult]:
    """Read ``wise.json`` (variant name -> result); a missing or malformed file raises
    :class:`InputFileError` naming ``flatkd wise``."""
    run = Path(path).parent
    try:
        obj = read_json(path)
        if not isinstance(obj, dict):
            raise ValueError(f"expected an object of WISE variants, got {type(obj).__name__}")
        bad = _non_finite(obj)
        if bad:
            raise ValueError(f"{bad} is not a finite number")
        return {str(tag): WiseResult.from_json(result) for tag, result in obj.items()}
    except InputFileError as exc:
        raise InputFileError(f"{exc}; run `flatkd wise --run {run}` first") from None
    except ValueError as exc:
        raise InputFileError(
            f"{path}: malformed WISE result ({exc}); move it away and run `flatkd wise --run {run}` again"
        ) from None
