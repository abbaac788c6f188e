"""The one training loop: any stage, any step, one process or DDP, resumable.

:func:`fit` trains a :class:`~flatkd.train.steps.Step` (what it updates and the losses of a batch;
:class:`~flatkd.train.steps.LossStep` for a plain loss, generative KD's two-phase step for that
method) on a :class:`FitSpec`, and per epoch:

1. re-seeds everything from (seed, seed stream, epoch) (the stream is the stage name unless the
   spec names a shared one) and reshuffles (``DistributedSampler``, also for
   a single process, so 1 and N processes see the same global batches);
2. trains, once per phase of the step: per batch set the learning rate
   ``lr * lr_mult * factor(epoch * steps + step)``, build the :class:`Batch`, compute the losses
   (bf16 autocast on CUDA), backward, average the gradients over the processes, step;
3. evaluates every exit of the spec's model on the validation split; the mean validation
   accuracy of the ``monitor`` exits picks the best epoch, a tie going to the lower validation
   loss (the test split is never looked at; without a validation split the last epoch is kept);
4. rank 0 writes the best weights (if improved), then the resume state (the commit point), then
   the stage's rows of the metrics table.

Epochs are counted from 1 in every file and line (metrics rows, the best epoch, checkpoint
metadata, log lines, progress bars); only the loop's own index (``Batch.epoch``, the seeds, the
schedule) counts from 0.

``batch_size`` is the global batch: each of N processes takes ``batch_size / N`` clips.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from flatkd.config import changed_keys, to_dict
from flatkd.errors import ConfigError, FlatkdError
from flatkd.models import MultiExitNet
from flatkd.progress import ProgressFactory, no_progress
from flatkd.train.checkpoint import (
    ResumeState,
    StageFiles,
    apply_weights,
    load_resume,
    load_weights,
    save_resume,
    save_weights,
)
from flatkd.train.config import ScheduleConfig, StageConfig, TrainConfig
from flatkd.train.distributed import LOCAL, Dist, synchronise_batchnorm
from flatkd.train.evaluation import autocast, exit_accuracy, exit_cross_entropy, predict, to_device
from flatkd.train.losses import Batch, BatchHook, Loss
from flatkd.train.optim import lr_factor, set_lr
from flatkd.train.seeding import derive_seed, generator, seed_all, worker_init_fn
from flatkd.train.steps import LossStep, Phase, Step

log = logging.getLogger(__name__)

#: called with each epoch's metrics row once it is committed
EpochCallback = Callable[[dict[str, Any]], None]

#: training stops (:class:`DivergenceError`) when a batch's loss exceeds this multiple of
#: ``max(first batch's loss of the stage in this process, 1)``, or is not finite
DIVERGENCE_FACTOR = 100.0


class DivergenceError(FlatkdError):
    """The loss became non-finite or exploded; the last committed epoch is kept."""


#: TrainConfig fields that cannot change the numbers (the memory layout and compilation change
#: only the floating-point rounding), so a resume may change them
_RESULT_NEUTRAL = ("workers", "eval_batch_size", "channels_last", "compile", "backbone", "ics")


@dataclasses.dataclass(frozen=True)
class FitSpec:
    """One training stage: its name, the network it is validated on (``model``; its modality is
    the student's), the data, how long and on which schedule, and the runtime settings.

    ``settings``: everything the stage's numbers depend on; recorded in the resume state, and a
    resume with other settings is refused. ``monitor``: exits (negative = from the end) whose
    mean validation accuracy selects the best epoch. ``val_set`` None keeps the last epoch.
    ``seed_stream``: the name the batch order and the per-epoch seeds derive from, with
    ``config.seed`` (empty: the stage name); stages that must see the same batches share one.
    """

    stage: str
    model: MultiExitNet
    train_set: Dataset
    val_set: Dataset | None
    config: TrainConfig
    epochs: int
    schedule: ScheduleConfig
    settings: Mapping[str, Any]
    monitor: Sequence[int] = (-1,)
    seed_stream: str = ""


@dataclasses.dataclass(frozen=True)
class StageResult:
    """Outcome of :func:`fit`: the best epoch (counted from 1), its metric, and all metrics rows."""

    stage: str
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]]


def fit(
    spec: FitSpec,
    step: Step,
    files: StageFiles,
    *,
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> StageResult:
    """Train one stage and leave ``step.kept`` holding the stage's best weights.

    ``spec.train_set``/``val_set`` yield ``(inputs: {modality: [S, C, H, W]}, label)`` with every
    modality the step reads; ``set_epoch(epoch)`` is called on them when they have it.
    ``files``: where the stage's weights, resume state and metrics rows go. ``resume``: continue
    from the stage's resume state (without it an existing state is an error). ``on_epoch_end``:
    called with each epoch's metrics row once it is committed.
    """
    config, stage, modality = spec.config, spec.stage, spec.model.modality
    stream = spec.seed_stream or stage
    monitor = [range(spec.model.num_exits)[m] for m in spec.monitor]
    per_process = _per_process_batch(config.batch_size, env)
    _place((step.trained, spec.model, *step.helpers), spec.model, config, env)
    if config.sync_bn:
        synchronise_batchnorm(step.trained, env)
    state = _restore(files, stage, modality, step, dict(spec.settings), resume)
    sampler = DistributedSampler(
        spec.train_set, num_replicas=env.world_size, rank=env.rank, seed=derive_seed(config.seed, stream)
    )
    if spec.val_set is not None and len(spec.val_set) == 0:  # type: ignore[arg-type]
        raise ConfigError("the validation split is empty: raise --val-fraction (it picks the best epoch)")
    steps = len(sampler) // per_process
    if steps == 0:
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(spec.train_set)} training clips")
    guard = _DivergenceGuard(stage, modality, files)
    for epoch in range(state.epochs_done, spec.epochs):
        started = time.perf_counter()
        seed_all(derive_seed(config.seed, stream, epoch))
        sampler.set_epoch(epoch)
        for dataset in (spec.train_set, spec.val_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
        loader = DataLoader(
            spec.train_set,
            batch_size=per_process,
            sampler=sampler,
            num_workers=config.workers,
            worker_init_fn=worker_init_fn,
            generator=generator(derive_seed(config.seed, stream, epoch, "loader")),
            drop_last=True,
            pin_memory=env.device.type == "cuda",
        )
        desc = f"{stage} {modality} {epoch + 1}/{spec.epochs}"
        train_row: dict[str, Any] = {}
        for phase in step.phases:
            name = f"{desc} {phase.name}" if phase.name else desc
            train_row |= _train_phase(step, phase, loader, epoch, steps, spec, monitor, env, progress, name, guard)
        env.broadcast_buffers(step.trained)
        timing = {k: train_row.pop(k) for k in ("clips_per_s", "data_wait")}
        validation: dict[str, float] = {}
        if spec.val_set is not None:
            logits, labels = predict(spec.model, spec.val_set, config, env=env, progress=progress, desc=f"{desc} val")
            validation = _validation_metrics(logits, labels, monitor)
            if not torch.isfinite(logits).all() or not math.isfinite(validation["val_loss"]):
                raise guard.stop(f"the validation logits are not finite after epoch {epoch}")
        extra = dict(step.epoch_columns(epoch))
        row = {"epoch": epoch + 1, **train_row, **extra, **validation, "seconds": time.perf_counter() - started, **timing}
        state.history.append(row)
        improved = spec.val_set is None or _improves(validation, state)
        if improved:
            state.best_metric, state.best_epoch = validation.get("val_acc", -math.inf), epoch + 1
        state.epochs_done = epoch + 1
        if env.is_main:
            _commit(files, stage, config.preset, modality, step, state, improved)
        env.barrier()
        log.info("%s %s epoch %d/%d: %s", stage, modality, row["epoch"], spec.epochs, _summary(row, state.best_metric))
        if on_epoch_end is not None:
            on_epoch_end({"stage": stage, "modality": modality, **row})
    load_weights(files.weights, step.kept)
    return StageResult(stage, state.best_epoch, state.best_metric, state.history)


def fit_loss(
    model: MultiExitNet,
    train_set: Dataset,
    val_set: Dataset,
    files: StageFiles,
    *,
    stage: str,
    config: TrainConfig,
    stage_config: StageConfig,
    loss: Loss,
    monitor: Sequence[int],
    hooks: Sequence[BatchHook] = (),
    columns: Callable[[int], Mapping[str, Any]] | None = None,
    seed_stream: str = "",
    settings: Mapping[str, Any] | None = None,
    **options: Any,
) -> StageResult:
    """:func:`fit` with a :class:`LossStep`: train ``model``'s trainable part on ``loss`` for
    ``stage_config``'s epochs, optimiser and schedule (``options``: those of :func:`fit`).
    ``settings``: what else the numbers depend on (e.g. the loss's), added to
    :func:`stage_settings` so that a resume with other values is refused."""
    spec = FitSpec(
        stage, model, train_set, val_set, config, stage_config.epochs, stage_config.schedule,
        stage_settings(config, stage_config) | dict(settings or {}), tuple(monitor), seed_stream,
    )  # fmt: skip
    return fit(spec, LossStep(model, loss, stage_config.optim, hooks, columns), files, **options)


def stage_settings(config: TrainConfig, stage: StageConfig) -> dict[str, Any]:
    """What a :class:`LossStep` stage's numbers depend on: ``config`` less the fields that cannot
    change them (loader workers, evaluation batch size, the other stages), and the stage's own
    settings. The :attr:`FitSpec.settings` of every such stage."""
    settings = {k: v for k, v in to_dict(config).items() if k not in _RESULT_NEUTRAL}
    return settings | {"stage": to_dict(stage)}


def _train_phase(
    step: Step,
    phase: Phase,
    loader: DataLoader,
    epoch: int,
    steps: int,
    spec: FitSpec,
    monitor: list[int],
    env: Dist,
    progress: ProgressFactory,
    desc: str,
    guard: _DivergenceGuard,
) -> dict[str, float]:
    """One pass of ``phase`` over the training split. Returns the last lr, train_loss (mean of
    the minimised loss), train_acc (when the step gives exits), the mean of every loss term as
    ``<phase>_<term>`` (phases with a name), the training throughput (clips/s, all processes)
    and data_wait (fraction of the pass spent waiting for the data loader).

    The loss terms and correct counts are summed on the device; the host reads them (and
    ``guard`` checks every step's losses) once every :func:`_check_interval` steps, so a GPU step
    never waits for the host. Under DDP the checked losses are the means over the processes (one
    all-reduce per check), so a loss that turns non-finite on one process stops every process at
    the same step instead of leaving the others waiting in the gradient all-reduce."""
    optimised = step.optimizers[phase.optimizer]
    every = _check_interval(env.device)
    terms: list[str] = []
    sums = torch.zeros(0, dtype=torch.float64, device=env.device)
    correct = torch.zeros(len(monitor), dtype=torch.int64, device=env.device)
    unchecked: list[torch.Tensor] = []
    clips, waited, began, tick, factor, exits = 0, 0.0, time.perf_counter(), time.perf_counter(), 1.0, False
    with step.phase(phase), progress(total=steps, desc=desc) as bar:
        for index, (inputs, labels) in enumerate(loader):
            waited += time.perf_counter() - tick
            factor = lr_factor(spec.schedule, epoch * steps + index, steps, spec.epochs)
            set_lr(optimised.optimizer, optimised.lr, factor)
            batch = Batch(
                inputs={m: to_device(x, env.device, spec.config.channels_last) for m, x in inputs.items()},
                labels=labels.to(env.device, non_blocking=True),
                epoch=epoch,
            )
            with autocast(env.device, spec.config.bf16):
                output = step(phase, batch)
            if not terms:
                terms = sorted(output.losses)
                sums = torch.zeros(len(terms), dtype=torch.float64, device=env.device)
            values = torch.stack([output.losses[t].detach().double() for t in terms])
            unchecked.append(values)
            if len(unchecked) == every or index + 1 == steps:
                losses = (env.all_reduce(torch.stack(unchecked)) / env.world_size).cpu().tolist()
                guard.check(terms, losses, epoch, index + 1 - len(losses))
                bar.set_postfix(loss=f"{losses[-1][terms.index('total')]:.3f}")
                unchecked.clear()
            optimised.optimizer.zero_grad(set_to_none=True)
            output.losses["total"].backward()
            params = [p for group in optimised.optimizer.param_groups for p in group["params"]]
            env.average_gradients(params)
            optimised.optimizer.step()
            optimised.optimizer.zero_grad(set_to_none=True)
            n = len(labels)
            clips += n
            sums += values * n
            if output.exits is not None:
                exits = True
                with torch.no_grad():
                    correct += torch.stack([(output.exits[m].argmax(-1) == batch.labels).sum() for m in monitor])
            bar.update(1)
            tick = time.perf_counter()
    elapsed = max(time.perf_counter() - began, 1e-9)
    totals = env.sum(torch.tensor([clips, waited / elapsed, *correct.tolist(), *sums.tolist()]))
    n, means = float(totals[0]), [float(v) / float(totals[0]) for v in totals[2 + len(monitor) :]]
    row = {"lr": optimised.lr * factor, "train_loss": means[terms.index("total")]}
    if exits:
        row["train_acc"] = float(totals[2 : 2 + len(monitor)].mean()) / n
    if phase.name:
        row |= {f"{phase.name}_{t}": m for t, m in zip(terms, means)}
    return row | {"clips_per_s": n / elapsed, "data_wait": float(totals[1]) / env.world_size}


#: steps between two host reads of the losses on an accelerator (on the CPU: every step)
CHECK_INTERVAL = 25


def _check_interval(device: torch.device) -> int:
    """How many steps the losses stay on ``device`` before the host reads and checks them: 1 on
    the CPU (reading costs nothing there), :data:`CHECK_INTERVAL` elsewhere (each read waits for
    the device to finish its queue)."""
    return 1 if device.type == "cpu" else CHECK_INTERVAL


class _DivergenceGuard:
    """Stops a stage whose loss is not finite or exceeds :data:`DIVERGENCE_FACTOR` times
    ``max(its first loss, 1)``, with one line saying what happened, what is kept and what to do."""

    def __init__(self, stage: str, modality: str, files: StageFiles) -> None:
        self.stage, self.modality, self.files = stage, modality, files
        self.reference: float | None = None

    def check(self, terms: Sequence[str], losses: Sequence[Sequence[float]], epoch: int, first: int) -> None:
        """Check the loss terms (``losses[i][j]``: term ``terms[j]`` of step ``first + i``)."""
        for offset, row in enumerate(losses):
            self._check_step(dict(zip(terms, row, strict=True)), epoch, first + offset)

    def _check_step(self, values: Mapping[str, float], epoch: int, index: int) -> None:
        total = values["total"]
        bad = [term for term, value in values.items() if not math.isfinite(value)]
        if bad:
            raise self.stop(f"the loss ({', '.join(bad)}) became {values[bad[0]]} at epoch {epoch}, step {index}")
        if self.reference is None:
            self.reference = max(abs(total), 1.0)
        elif abs(total) > DIVERGENCE_FACTOR * self.reference:
            raise self.stop(
                f"the loss exploded to {total:.3g} at epoch {epoch}, step {index} (over"
                f" {DIVERGENCE_FACTOR:g}x its start, {self.reference:.3g})"
            )

    def stop(self, what: str) -> DivergenceError:
        kept = (
            f"the last good epoch is kept in {self.files.weights}"
            if self.files.weights.is_file()
            else "no epoch was committed"
        )
        return DivergenceError(
            f"{self.stage} {self.modality}: training diverged: {what}; {kept}; lower the learning rate"
            " (--set backbone.optim.lr=... or ics.optim.lr=...) and train into a new --run"
        )


def _summary(row: Mapping[str, Any], best: float) -> str:
    """The epoch's log line (epochs counted from 1, as in the progress bars): training loss and
    accuracy, validation loss and accuracy (and the best so far), lr, data wait and time."""
    parts = [f"train_loss {row['train_loss']:.4f}"]
    if "train_acc" in row:
        parts.append(f"train_acc {row['train_acc']:.4f}")
    if "val_acc" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_acc']:.4f} (best {best:.4f})"]
    parts += [f"lr {row['lr']:.3g}", f"data_wait {row['data_wait']:.0%}", f"{row['seconds']:.1f}s"]
    return ", ".join(parts)


def _place(modules: Sequence[torch.nn.Module], network: MultiExitNet, config: TrainConfig, env: Dist) -> None:
    """Move ``modules`` to the process's device; with ``config.channels_last`` store ``network``'s
    4-D weights NHWC (in place: the optimisers keep their parameters; other tensors and modules,
    e.g. generative KD's 3-D convolutions, keep their layout); with ``config.compile`` compile its forward in
    place (``nn.Module.compile``: the weights and their names stay, so checkpoints are unchanged;
    steps that call other methods of the network, such as generative KD's feature path, run
    them eagerly)."""
    for module in modules:
        module.to(env.device)
    if config.channels_last:
        for tensor in (*network.parameters(), *network.buffers()):
            if tensor.dim() == 4:  # conv weights; ``Module.to`` would fail on a 5-D one
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    if config.compile:
        network.compile()


def _improves(validation: Mapping[str, float], state: ResumeState) -> bool:
    """Whether this epoch's validation beats the best so far: a higher monitored accuracy, or the
    same accuracy at a lower loss (on a small validation split accuracies tie often, and keeping
    the earlier epoch kept networks that predicted one class; the loss still tells them apart)."""
    if validation["val_acc"] != state.best_metric:
        return validation["val_acc"] > state.best_metric
    best = next(row for row in state.history if row["epoch"] == state.best_epoch)
    return validation["val_loss"] < best["val_loss"]


def _validation_metrics(logits: torch.Tensor, labels: torch.Tensor, monitor: list[int]) -> dict[str, float]:
    """val_loss and val_acc (means over the monitored exits) and the accuracy of every exit."""
    accuracy = exit_accuracy(logits, labels)
    return {
        "val_loss": float(exit_cross_entropy(logits, labels)[monitor].mean()),
        "val_acc": float(accuracy[monitor].mean()),
        **{f"val_acc_exit{i}": float(a) for i, a in enumerate(accuracy)},
    }


def _commit(
    files: StageFiles, stage: str, preset: str, modality: str, step: Step, state: ResumeState, improved: bool
) -> None:
    """Write the epoch's files in kill-safe order: best weights, resume state, metrics rows."""
    if improved:
        meta = {"stage": stage, "modality": modality, "preset": preset, "epoch": state.best_epoch}
        save_weights(files.weights, step.kept, meta | {"val_acc": state.best_metric})
    state.model = step.trained.state_dict()
    state.optimizer = {name: o.optimizer.state_dict() for name, o in step.optimizers.items()}
    save_resume(files.resume, state)
    files.write_metrics(state.history)


def _restore(
    files: StageFiles, stage: str, modality: str, step: Step, settings: dict[str, Any], resume: bool
) -> ResumeState:
    fresh = ResumeState(0, -math.inf, -1, [], settings, {}, {})
    if not files.resume.is_file():
        return fresh
    if not resume:
        raise FlatkdError(
            f"{files.owner} already has stage '{stage}' of {modality}; pass --resume to continue"
            " it or choose a new --run"
        )
    state = load_resume(files.resume)
    changed = first_difference(state.settings, settings)
    if changed is not None:
        raise ConfigError(
            f"{changed} differs from the interrupted '{stage}' run in {files.owner}; resume with the same"
            " settings or choose a new --run"
        )
    apply_weights(step.trained, state.model, files.resume)
    try:
        for name, optimised in step.optimizers.items():
            optimised.optimizer.load_state_dict(state.optimizer[name])
    except (ValueError, KeyError) as exc:
        raise FlatkdError(f"{files.resume}: optimiser state does not fit ({exc}); delete it to restart") from None
    return state


def first_difference(old: Any, new: Any) -> str | None:
    """The first dotted key where two settings trees differ (:func:`flatkd.config.changed_keys`),
    with both values; None if equal."""
    changed = changed_keys(old, new)
    if not changed:
        return None
    key, before, after = changed[0]
    return f"setting '{key}' ({before!r} -> {after!r})"


def _per_process_batch(batch_size: int, env: Dist) -> int:
    if batch_size % env.world_size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {env.world_size} processes")
    return batch_size // env.world_size
