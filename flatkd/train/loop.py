"""The one training loop: any stage, any loss, one process or DDP, resumable.

:func:`fit` trains whatever part of a :class:`~flatkd.models.MultiExitNet` is trainable (the
caller chooses with ``model.set_trainable``) with a :class:`~flatkd.train.losses.Loss`, and per
epoch:

1. re-seeds everything from (seed, stage, epoch) and reshuffles (``DistributedSampler``, also for
   a single process, so 1 and N processes see the same global batches);
2. trains: per step set the learning rate, build the :class:`Batch`, run the hooks (teachers),
   forward the student, loss, backward, step;
3. evaluates every exit on the validation split; the mean validation accuracy of the ``monitor``
   exits picks the best epoch (the test split is never looked at);
4. rank 0 writes the best weights (if improved), then the resume state (the commit point), then
   the stage's rows of ``metrics.csv``.

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
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from flatkd.config import to_dict
from flatkd.errors import ConfigError, FlatkdError
from flatkd.models import MultiExitNet
from flatkd.progress import ProgressFactory, no_progress
from flatkd.rundir import RunDir
from flatkd.train.checkpoint import (
    ResumeState,
    apply_weights,
    load_resume,
    load_weights,
    save_resume,
    save_weights,
)
from flatkd.train.config import StageConfig, TrainConfig
from flatkd.train.distributed import LOCAL, Dist, wrap_for_training
from flatkd.train.evaluation import autocast, exit_accuracy, exit_cross_entropy, predict
from flatkd.train.losses import Batch, BatchHook, Loss
from flatkd.train.optim import build_optimizer, lr_factor, set_lr
from flatkd.train.seeding import derive_seed, generator, seed_all, worker_init_fn

log = logging.getLogger(__name__)

#: TrainConfig fields that cannot change the numbers, so a resume may change them
_RESULT_NEUTRAL = ("workers", "eval_batch_size", "backbone", "ics")


@dataclasses.dataclass(frozen=True)
class StageResult:
    """Outcome of :func:`fit`: the best epoch (0-based), its metric, and all metrics rows."""

    stage: str
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]]


def fit(
    model: MultiExitNet,
    train_set: Dataset,
    val_set: Dataset,
    *,
    run: RunDir,
    stage: str,
    config: TrainConfig,
    stage_config: StageConfig,
    loss: Loss,
    monitor: Sequence[int],
    hooks: Sequence[BatchHook] = (),
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    epoch_metrics: Callable[[int], Mapping[str, Any]] | None = None,
) -> StageResult:
    """Train one stage of ``model`` and leave it holding the stage's best weights.

    Args:
        train_set, val_set: datasets yielding ``(inputs: {modality: [S, C, H, W]}, label)`` with
            the student's modality and every modality a hook reads; ``set_epoch(epoch)`` is
            called on them when they have it.
        run: the run directory receiving checkpoints and metrics.
        stage: the stage name (``backbone``, ``ic-ce``, ``ic-pkd``, ...).
        config: the modality's settings (seed, batch sizes, device, ...); ``stage_config`` the
            stage's epochs, optimiser and schedule.
        loss: the objective; ``monitor``: exits (negative = from the end) whose mean validation
            accuracy selects the best epoch.
        hooks: run on every training batch before the student (e.g. teacher logits).
        resume: continue from the stage's resume state; without it an existing state is an error.
        on_epoch_end: called with each epoch's metrics row (as in ``metrics.csv``) once it is
            committed.
        epoch_metrics: called with the epoch after its training pass; the columns it returns
            join the epoch's metrics row (e.g. the teacher a distillation schedule used).
    """
    modality = model.modality
    monitor = [range(model.num_exits)[m] for m in monitor]
    per_process = _per_process_batch(config.batch_size, env)
    model.to(env.device)
    for hook in hooks:
        if isinstance(hook, nn.Module):
            hook.to(env.device)
    optimizer = build_optimizer(model, stage_config.optim)
    settings = _settings(config, stage_config)
    state = _restore(run, stage, model, optimizer, settings, resume)
    net = wrap_for_training(model, env, config.sync_bn)
    sampler = DistributedSampler(
        train_set, num_replicas=env.world_size, rank=env.rank, seed=derive_seed(config.seed, stage)
    )
    if len(val_set) == 0:  # type: ignore[arg-type]
        raise ConfigError("the validation split is empty: raise --val-fraction (it picks the best epoch)")
    steps = len(sampler) // per_process
    if steps == 0:
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(train_set)} training clips")
    for epoch in range(state.epochs_done, stage_config.epochs):
        started = time.perf_counter()
        seed_all(derive_seed(config.seed, stage, epoch))
        sampler.set_epoch(epoch)
        for dataset in (train_set, val_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
        loader = DataLoader(
            train_set,
            batch_size=per_process,
            sampler=sampler,
            num_workers=config.workers,
            worker_init_fn=worker_init_fn,
            generator=generator(derive_seed(config.seed, stage, epoch, "loader")),
            drop_last=True,
            pin_memory=env.device.type == "cuda",
        )
        desc = f"{stage} {modality} {epoch + 1}/{stage_config.epochs}"
        train_row = _train_epoch(
            net,
            modality,
            loader,
            optimizer,
            loss,
            hooks,
            epoch,
            steps,
            stage_config,
            config,
            monitor,
            env,
            progress,
            desc,
        )
        logits, labels = predict(model, val_set, config, env=env, progress=progress, desc=f"{desc} val")
        timing = {k: train_row.pop(k) for k in ("clips_per_s", "data_wait")}
        validation = _validation_metrics(logits, labels, monitor)
        extra = {} if epoch_metrics is None else dict(epoch_metrics(epoch))
        row = {"epoch": epoch, **train_row, **extra, **validation, "seconds": time.perf_counter() - started, **timing}
        state.history.append(row)
        improved = validation["val_acc"] > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = validation["val_acc"], epoch
        state.epochs_done = epoch + 1
        if env.is_main:
            _commit(run, stage, config.preset, model, optimizer, state, improved)
        env.barrier()
        log.info(
            "%s %s epoch %d: val_acc %.4f (best %.4f)",
            stage,
            modality,
            epoch,
            row["val_acc"],
            state.best_metric,
        )
        if on_epoch_end is not None:
            on_epoch_end({"stage": stage, "modality": modality, **row})
    load_weights(run.checkpoint_path(stage, modality), model)
    return StageResult(stage, state.best_epoch, state.best_metric, state.history)


def _train_epoch(
    net: nn.Module,
    modality: str,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss: Loss,
    hooks: Sequence[BatchHook],
    epoch: int,
    steps: int,
    stage_config: StageConfig,
    config: TrainConfig,
    monitor: list[int],
    env: Dist,
    progress: ProgressFactory,
    desc: str,
) -> dict[str, float]:
    """One pass over the training split; returns the last lr, train_loss, train_acc, the training
    throughput (clips/s, all processes) and data_wait (fraction of the pass spent waiting for
    the data loader)."""
    net.train()
    totals = torch.zeros(2 + len(monitor), dtype=torch.float64)  # loss * n, n, correct per exit
    waited, began, tick = 0.0, time.perf_counter(), time.perf_counter()
    factor = 1.0
    with progress(total=steps, desc=desc) as bar:
        for step, (inputs, labels) in enumerate(loader):
            waited += time.perf_counter() - tick
            factor = lr_factor(stage_config.schedule, epoch * steps + step, steps, stage_config.epochs)
            set_lr(optimizer, stage_config.optim.lr, factor)
            batch = Batch(
                inputs={m: x.to(env.device, non_blocking=True) for m, x in inputs.items()},
                labels=labels.to(env.device, non_blocking=True),
                epoch=epoch,
            )
            for hook in hooks:
                hook(batch)
            with autocast(env.device, config.bf16):
                exits = net(batch.inputs[modality])
                value = loss(exits, batch)
            loss_value = value.item()
            if not math.isfinite(loss_value):
                raise FlatkdError(
                    f"the loss became {loss_value} at epoch {epoch}, step {step}; lower the learning rate"
                )
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            with torch.no_grad():
                correct = [(exits[m].argmax(dim=-1) == batch.labels).sum().item() for m in monitor]
            n = len(labels)
            totals += torch.tensor([loss_value * n, n, *correct], dtype=torch.float64)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            tick = time.perf_counter()
    elapsed = max(time.perf_counter() - began, 1e-9)
    wait_fraction = env.sum(torch.tensor([waited / elapsed]))
    totals = env.sum(totals)
    return {
        "lr": stage_config.optim.lr * factor,
        "train_loss": float(totals[0] / totals[1]),
        "train_acc": float(totals[2:].mean() / totals[1]),
        "clips_per_s": float(totals[1]) / elapsed,
        "data_wait": float(wait_fraction[0] / env.world_size),
    }


def _validation_metrics(logits: torch.Tensor, labels: torch.Tensor, monitor: list[int]) -> dict[str, float]:
    """val_loss and val_acc (means over the monitored exits) and the accuracy of every exit."""
    accuracy = exit_accuracy(logits, labels)
    return {
        "val_loss": float(exit_cross_entropy(logits, labels)[monitor].mean()),
        "val_acc": float(accuracy[monitor].mean()),
        **{f"val_acc_exit{i}": float(a) for i, a in enumerate(accuracy)},
    }


def _commit(
    run: RunDir,
    stage: str,
    preset: str,
    model: MultiExitNet,
    optimizer: torch.optim.Optimizer,
    state: ResumeState,
    improved: bool,
) -> None:
    """Write the epoch's files in kill-safe order: best weights, resume state, metrics rows."""
    modality = model.modality
    if improved:
        meta = {"stage": stage, "modality": modality, "preset": preset, "epoch": state.best_epoch}
        save_weights(run.checkpoint_path(stage, modality), model, meta | {"val_acc": state.best_metric})
    state.model, state.optimizer = model.state_dict(), optimizer.state_dict()
    save_resume(run.resume_path(stage, modality), state)
    run.write_metrics(stage, modality, state.history)


def _restore(
    run: RunDir,
    stage: str,
    model: MultiExitNet,
    optimizer: torch.optim.Optimizer,
    settings: dict[str, Any],
    resume: bool,
) -> ResumeState:
    path = run.resume_path(stage, model.modality)
    fresh = ResumeState(0, -math.inf, -1, [], settings, {}, {})
    if not path.is_file():
        return fresh
    if not resume:
        raise FlatkdError(
            f"{run.path} already has stage '{stage}' of {model.modality}; pass --resume to continue"
            " it or choose a new --run"
        )
    state = load_resume(path)
    changed = _first_difference(state.settings, settings)
    if changed is not None:
        raise ConfigError(
            f"{changed} differs from the interrupted '{stage}' run in {run.path}; resume with the same"
            " settings or choose a new --run"
        )
    apply_weights(model, state.model, path)
    try:
        optimizer.load_state_dict(state.optimizer)
    except (ValueError, KeyError) as exc:
        raise FlatkdError(f"{path}: optimiser state does not fit ({exc}); delete it to restart") from None
    return state


def _settings(config: TrainConfig, stage_config: StageConfig) -> dict[str, Any]:
    settings = {k: v for k, v in to_dict(config).items() if k not in _RESULT_NEUTRAL}
    return settings | {"stage": to_dict(stage_config)}


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The dotted key where two settings trees differ, with both values; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if found is not None:
                return found
        return None
    return None if old == new else f"setting '{where}' ({old!r} -> {new!r})"


def _per_process_batch(batch_size: int, env: Dist) -> int:
    if batch_size % env.world_size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {env.world_size} processes")
    return batch_size // env.world_size
