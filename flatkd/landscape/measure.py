"""All flatness metrics of one network exit, resumable from a folder of partial results.

:func:`measure_network` computes, on one fixed data subset: the shared spectrum (top eigenvalue,
trace, density; :mod:`.estimators.spectrum`) of the Hessian and of the adaptive Hessian
:math:`|\\theta| H |\\theta|` (:mod:`.estimators.adaptive`), how far the gradient is from a minimum
(:func:`quadratic_decrease`), Keskar's and the adaptive epsilon- and rho-sharpness
(:mod:`.surfaces.sharpness`) and, on the first subset only (``subset == 0``), a 1-D line and a 2-D
plane (:mod:`.surfaces.surface`) with the mean loss increase within ``rho`` on the plane. With a ``store``
folder every finished piece is written there atomically (``result.json``, ``density.safetensors``,
``line.safetensors``, ``plane.safetensors``, the plane also while it is being evaluated), and a
later call with the same settings and the same ``fingerprint`` (e.g. a hash of the checkpoint)
picks up where the last one stopped instead of starting over.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flatkd.fileio import load_tensors, read_json, read_tensor_metadata, save_tensors, write_json
from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.hessian import Hessian
from flatkd.landscape.objective import Objective
from flatkd.landscape.ranking import FlatnessRecord
from flatkd.landscape.results import DensityEstimate
from flatkd.landscape.settings import FlatnessSettings
from flatkd.landscape.surfaces.loss_surface import LossSurface, load_surface, save_surface
from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.surfaces.sharpness import adaptive_rho_sharpness, epsilon_sharpness, mean_loss_increase
from flatkd.landscape.surfaces.surface import Surface
from flatkd.progress import ProgressFactory, no_progress
from flatkd.train.distributed import LOCAL, Dist


@dataclass(frozen=True)
class Measurement:
    """One exit's flatness record and the curves behind it (surfaces ``None`` if skipped)."""

    record: FlatnessRecord
    density: DensityEstimate
    line: LossSurface | None
    plane: LossSurface | None


def measure_network(
    model: nn.Module,
    criterion: Any,
    data: Iterable[Any],
    settings: FlatnessSettings,
    *,
    modality: str,
    exit: int,  # noqa: A002
    subset: int = 0,
    store: Path | None = None,
    fingerprint: str = "",
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
) -> Measurement:
    """Every metric of ``model`` (one exit, e.g. :class:`SelectExit`) on ``data``, the ``subset``-th
    subset of its clips (module docstring), resumable.

    ``env``: the processes sharing the subset (:mod:`.objective`), ``data`` being this process's
    shard; every process computes every number, all read ``store`` and rank 0 alone writes it.
    """
    identity = {
        "settings": asdict(settings), "modality": modality, "exit": exit, "subset": subset, "fingerprint": fingerprint,
    }  # fmt: skip
    if env.distributed and settings.backend != "flatkd":
        raise LandscapeInputError(f"backend {settings.backend!r} runs in one process: use backend 'flatkd' under torchrun")
    env.barrier()  # every process reads what earlier calls wrote, and decides alike
    finished = _load_finished(store, identity)
    if finished is not None:
        return finished
    writes = store is not None and env.is_main
    if writes and (store / "identity.json").is_file() and read_json(store / "identity.json") != identity:
        for stale in store.glob("*.safetensors"):
            stale.unlink()
    if writes:
        write_json(store / "identity.json", identity)
    objective = Objective(model, criterion, data, env=env)
    hessian = Hessian.of(objective, backend=settings.backend)
    budget = {"tol": settings.tol, "runs": settings.runs, "steps": settings.steps, "probes": settings.probes}
    spectrum = hessian.spectrum(**budget, seed=settings.seed, progress=progress)
    adaptive = hessian.spectrum(**budget, seed=settings.seed, adaptive=True, progress=progress)
    gradient_norm, decrease = quadratic_decrease(objective, hessian.operator)
    del hessian  # releases the cached double-backward graph before the surfaces
    line = plane = None
    increase = keskar = adaptive_box = adaptive_ball = None
    if settings.surfaces:
        ascent = {"steps": settings.sharpness_steps, "progress": progress}
        keskar = epsilon_sharpness(objective, settings.epsilon, **ascent).value
        adaptive_box = epsilon_sharpness(objective, settings.epsilon, adaptive=True, **ascent).value
        adaptive_ball = adaptive_rho_sharpness(objective, settings.asam_rho, **ascent).value
    if settings.surfaces and subset == 0:
        surface = Surface.of(objective)
        grid = {"radius": settings.radius, "seed": settings.seed, "progress": progress}
        line = _resumable(store, "line", functools.partial(surface.line, steps=settings.line_steps, **grid), writes)
        plane = _resumable(store, "plane", functools.partial(surface.plane, steps=settings.plane_steps, **grid), writes)
        increase = mean_loss_increase(plane, settings.rho)
    centre = objective.centre
    record = FlatnessRecord(
        modality=modality,
        exit=exit,
        parameters=objective.dim,
        loss=centre.loss,
        accuracy=centre.accuracy,
        top_eigenvalue=spectrum.eigen.values[0],
        top_eigenvalue_bound=spectrum.eigen.errors[0],
        trace=spectrum.trace.value,
        trace_stderr=spectrum.trace.stderr,
        adaptive_top_eigenvalue=adaptive.eigen.values[0],
        adaptive_trace=adaptive.trace.value,
        adaptive_trace_stderr=adaptive.trace.stderr,
        mean_loss_increase=increase,
        epsilon_sharpness=keskar,
        adaptive_epsilon_sharpness=adaptive_box,
        adaptive_rho_sharpness=adaptive_ball,
        classes=_classes(objective),
        gradient_norm=gradient_norm,
        quadratic_decrease=decrease,
        hvps=spectrum.hvps + adaptive.hvps + 1,
        clips=objective.clips,
        subset=subset,
    )
    if writes:
        _save_density(store / "density.safetensors", spectrum.density)
        summary = {"spectrum": spectrum.summary(), "adaptive_spectrum": adaptive.summary()}
        write_json(store / "result.json", {**identity, "record": asdict(record), **summary})
    return Measurement(record, spectrum.density, line, plane)


def quadratic_decrease(objective: Objective, hessian: LinearOperator) -> tuple[float, float]:
    """:math:`(\\|g\\|, \\|g\\|^4 / (2 g^\\top H g))` at the objective's weights: the gradient norm and
    the loss decrease of the best step along :math:`-g` under the local quadratic model
    (:math:`\\min_t L - t\\|g\\|^2 + t^2 g^\\top H g / 2`); infinite when :math:`g^\\top H g \\le 0`
    (no minimum along :math:`g`). Near a minimum it is a small fraction of the loss.
    One gradient and one HVP.

    >>> import torch
    >>> from torch import nn
    >>> from flatkd.landscape.hvp import HessianOperator
    >>> model = nn.PReLU(init=0.5, dtype=torch.float64)  # loss (1 - w)^2 at w = 0.5: g = -1, H = 2
    >>> x = -torch.ones(1, 1, dtype=torch.float64)
    >>> objective = Objective(model, nn.MSELoss(), [(x, x)])
    >>> quadratic_decrease(objective, HessianOperator(objective))
    (1.0, 0.25)
    """
    _, gradient = objective.gradient(objective.theta)
    squared = float(gradient @ gradient)
    curvature = float(gradient @ hessian.matvec(gradient))
    decrease = squared**2 / (2 * curvature) if curvature > 0 else (0.0 if squared == 0 else math.inf)
    return math.sqrt(squared), decrease


def _classes(objective: Objective) -> int:
    """Number of outputs of the model (classes of a classifier)."""
    with torch.no_grad():
        return int(objective.outputs(objective.theta, objective.batches[0].inputs).shape[-1])


def _resumable(store: Path | None, name: str, compute: Callable[..., LossSurface], writes: bool) -> LossSurface:
    """Run ``compute(resume=..., checkpoint=...)`` continuing from ``store/name``, saving to it
    when ``writes``."""
    if store is None:
        return compute()
    path = store / f"{name}.safetensors"
    resume = load_surface(path) if path.is_file() else None
    if not writes:
        return compute(resume=resume)
    result = compute(resume=resume, checkpoint=lambda partial: save_surface(path, partial))
    save_surface(path, result)
    return result


def _load_finished(store: Path | None, identity: dict[str, Any]) -> Measurement | None:
    """The stored measurement if ``store`` holds a finished one made the same way."""
    if store is None or not (store / "result.json").is_file():
        return None
    saved = read_json(store / "result.json")
    if {k: saved.get(k) for k in identity} != identity:
        return None
    try:
        record = FlatnessRecord(**saved["record"])
    except TypeError:  # written by a flatkd whose records had other fields: measure again
        return None
    paths = [store / f"{name}.safetensors" for name in ("line", "plane")]
    surfaces = [load_surface(path) if path.is_file() else None for path in paths]
    return Measurement(record, load_density(store / "density.safetensors"), *surfaces)


def _save_density(path: Path, density: DensityEstimate) -> None:
    tensors = {
        **{f"nodes.{i}": nodes for i, nodes in enumerate(density.nodes)},
        **{f"weights.{i}": weights for i, weights in enumerate(density.weights)},
    }
    save_tensors(path, tensors, metadata={"dim": str(density.dim), "hvps": str(density.hvps), "method": density.method})


def load_density(path: Path) -> DensityEstimate:
    """A spectral density saved by :func:`measure_network` (``flatness/<network>/density.safetensors``)."""
    tensors = load_tensors(path)
    meta = read_tensor_metadata(path)
    runs = len(tensors) // 2
    return DensityEstimate(
        tuple(tensors[f"nodes.{i}"] for i in range(runs)),
        tuple(tensors[f"weights.{i}"] for i in range(runs)),
        int(meta["dim"]),
        int(meta["hvps"]),
        meta["method"],
    )

