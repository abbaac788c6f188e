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

Differences from the release: no division of ``z_k`` by ``k`` (the fitted weights already set the
scale that the confidence threshold sees), one ``alpha`` for all steps (the release uses 0 for the
first steps and 0.1 later), and the last step weights all exits (the release's last step fuses
only the three final heads with separately tuned weights; the L1 term can zero the rest).
"""

from __future__ import annotations

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

#: Modality order of the release's cascade.
RELEASE_MODALITY_ORDER = ("residual", "mv", "iframe")


@dataclass(frozen=True)
class WiseConfig:
    """WISE settings. ``order``: exit names in cascade order (empty: the release order over the
    exits present); ``tau``: the threshold reported as the operating point; ``taus``: the sweep."""

    order: tuple[str, ...] = ()
    alpha: float = 0.01
    lr: float = 0.1
    iterations: int = 500
    scaling: bool = True
    lateral: bool = True
    tau: float = 0.999999
    taus: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999, 0.999999, 1.0)

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.lr <= 0 or self.iterations < 1:
            got = f"alpha={self.alpha}, lr={self.lr}, iterations={self.iterations}"
            raise ConfigError(f"wise: need alpha >= 0, lr > 0 and iterations >= 1, got {got}")
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


def early_exit(z: torch.Tensor, labels: torch.Tensor, costs: torch.Tensor, tau: float) -> ExitPoint:
    """Stop each clip at the first step whose max softmax of ``z`` [N, S, K] exceeds ``tau``."""
    confident = F.softmax(z.double(), dim=-1).amax(dim=-1) > tau
    confident[:, -1] = True
    step = confident.int().argmax(dim=1)
    prediction = z[torch.arange(z.shape[0]), step].argmax(dim=-1)
    fractions = torch.bincount(step, minlength=z.shape[1]).double() / z.shape[0]
    return ExitPoint(
        tau=float(tau),
        accuracy=(prediction == labels).double().mean().item(),
        macs=costs[step].mean().item(),
        exit_fractions=tuple(fractions.tolist()),
    )


@dataclass(frozen=True)
class WiseResult:
    """One WISE variant of ``wise.json``: the cascade, its weights (row ``k``: weights of exits
    ``0..k``), the operating point at ``tau``, the sweep, and per-step/per-exit references on
    the evaluation split (accuracy of every ``z_k`` without early exit, of every exit alone, and
    their costs)."""

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

    def best_exit(self) -> int:
        """Cascade position of the most accurate single exit (the cheaper one on a tie)."""
        return max(range(len(self.order)), key=lambda k: (self.exit_accuracy[k], -self.exit_macs[k]))

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
    split). Logits per modality are [N, E, K]; labels [N]; MACs as in :func:`step_costs`."""
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
    return WiseResult(
        order=tuple(order),
        weights=tuple(tuple(weights[k, : k + 1].tolist()) for k in range(len(order))),
        scaling=config.scaling,
        lateral=config.lateral,
        alpha=config.alpha,
        tau=config.tau,
        at_tau=early_exit(z, eval_labels, costs, config.tau),
        curve=tuple(early_exit(z, eval_labels, costs, t) for t in config.taus),
        step_accuracy=tuple(_accuracy(z[:, k], eval_labels) for k in range(len(order))),
        step_macs=tuple(costs.tolist()),
        exit_accuracy=tuple(_accuracy(eval_stack[:, k], eval_labels) for k in range(len(order))),
        exit_macs=tuple(standalone),
    )


def save_wise(path: str | os.PathLike[str], results: Mapping[str, WiseResult]) -> None:
    """Write ``wise.json`` (variant name -> result) atomically."""
    write_json(path, {tag: result.to_json() for tag, result in results.items()})


def load_wise(path: str | os.PathLike[str]) -> dict[str, WiseResult]:
    """Read ``wise.json`` (variant name -> result); a missing or malformed file raises
    :class:`InputFileError` naming ``flatkd wise``."""
    run = Path(path).parent
    try:
        obj = read_json(path)
        if not isinstance(obj, dict):
            raise ValueError(f"expected an object of WISE variants, got {type(obj).__name__}")
        return {str(tag): WiseResult.from_json(result) for tag, result in obj.items()}
    except InputFileError as exc:
        raise InputFileError(f"{exc}; run `flatkd wise --run {run}` first") from None
    except ValueError as exc:
        raise InputFileError(f"{path}: malformed WISE result ({exc}); re-run `flatkd wise --run {run}`") from None
