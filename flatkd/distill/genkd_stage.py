"""Generative feature KD on a run's networks: the I-frame teacher's branch, then each student.

Wang et al., "Generative Model-based Feature Knowledge Distillation for Action Recognition", AAAI
2024 (pieces in :mod:`flatkd.distill.genkd`, the two-stage epoch in
:mod:`flatkd.distill.genkd_train`). The distilled feature map is the last backbone stage's output,
the TSN segments as time steps (:meth:`flatkd.models.MultiExitNet.features`).

1. Stage ``genkd-teacher`` (the paper's "Feature Representation" phase, teacher side): the I-frame
   network (``ic-ce``) stays frozen, BatchNorm in eval mode; its attention head learns to reweight
   the features for its own final head, and its CVAE learns to reconstruct them. Written:
   ``checkpoints/genkd-teacher/iframe.safetensors`` (attention head + CVAE, after the last epoch).
2. Stage ``genkd``, per student (MV, residual): the network starts from its ``backbone`` weights
   with a fresh attention reweighting before its final head; each epoch trains the student's CVAE
   and feature adapter (Generative Distillation against the teacher's CVAE), then the network,
   attention head and attention adapter (label CE on the reweighted features, the ramped
   reconstruction term, Attention Distillation against the teacher's attention on the I-frames of
   the same clips). The best epoch by the final exit's validation accuracy (reweighting included)
   is kept: ``checkpoints/genkd/<modality>.safetensors`` (the whole network; its ICs are still
   the untrained ones, trained afterwards by the method's IC stage).

Both stages write a resume state after every epoch (``<modality>.resume.pt``: every trained
weight, both optimisers, the metrics history) and their rows of ``metrics.csv`` (the mean of
every loss term, learning rate, validation accuracy for students, seconds); every epoch is seeded
from (seed, stage, modality, epoch), so a resumed stage equals an uninterrupted one. One process
only (no DDP).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from flatkd.config import to_dict
from flatkd.distill.genkd import GenKDBranch, GenKDStudent
from flatkd.distill.genkd_train import genkd_epoch
from flatkd.distill.methods import GENKD_STAGE, GENKD_TEACHER, GENKD_TEACHER_STAGE
from flatkd.distill.networks import attach_attention, load_stage_network
from flatkd.distill.settings import GenKDSettings
from flatkd.errors import ConfigError, FlatkdError
from flatkd.models import MultiExitNet
from flatkd.progress import ProgressFactory, no_progress
from flatkd.rundir import RunDir
from flatkd.train import TrainConfig, exit_accuracy, predict
from flatkd.train.checkpoint import ResumeState, apply_weights, load_resume, load_weights, save_resume, save_weights
from flatkd.train.datasets import DataSource, open_split_data
from flatkd.train.distributed import resolve_device
from flatkd.train.optim import build_optimizer, lr_factor, set_lr
from flatkd.train.seeding import derive_seed, generator, seed_all, worker_init_fn
from flatkd.train.stages import FINAL_TRAIN_STAGE

EpochCallback = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class _Parts:
    """What one generative-KD stage trains and on what: ``net`` gives the features, ``branch`` is
    its attention head and CVAE (plus adapters), ``trained`` holds every weight the stage changes;
    ``teacher`` (network, branch) when distilling; ``val_set`` picks the best epoch (else the
    last one is kept)."""

    stage: str
    epochs: int
    net: MultiExitNet
    branch: GenKDStudent
    trained: nn.Module
    cvae_optimizer: torch.optim.Optimizer
    network_optimizer: torch.optim.Optimizer
    train_set: Dataset
    val_set: Dataset | None = None
    teacher: tuple[MultiExitNet, GenKDBranch] | None = None


class _Batches:
    """The loader's batches as ``(student clips, teacher clips or None, labels)`` on ``device``;
    iterable again for the second stage of an epoch."""

    def __init__(self, loader: DataLoader, student: str, teacher: str | None, device: torch.device) -> None:
        self.loader, self.student, self.teacher, self.device = loader, student, teacher, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        for inputs, labels in self.loader:
            teacher = None if self.teacher is None else inputs[self.teacher].to(self.device)
            yield inputs[self.student].to(self.device), teacher, labels.to(self.device)


def genkd_stage(modality: str) -> str:
    """``genkd-teacher`` for the I-frame network, ``genkd`` for a student."""
    return GENKD_TEACHER_STAGE if modality == GENKD_TEACHER else GENKD_STAGE


def genkd_complete(run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig) -> bool:
    """Whether ``modality``'s generative-KD stage ran all its epochs (with these settings: else an
    error)."""
    teacher = modality == GENKD_TEACHER
    path = run.resume_path(genkd_stage(modality), modality)
    if not path.is_file():
        return False
    state = load_resume(path)
    if state.epochs_done < (settings.teacher_epochs if teacher else settings.epochs):
        return False
    _check_same(run, genkd_stage(modality), modality, state.settings, _record(settings, config, teacher))
    return True


def train_genkd(
    run: RunDir,
    modality: str,
    settings: GenKDSettings,
    config: TrainConfig,
    source: DataSource,
    *,
    resume: bool = False,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> list[dict[str, Any]]:
    """``modality``'s generative-KD stage: the I-frame teacher's branch (stage ``genkd-teacher``)
    or a student's fine-tuning (stage ``genkd``; needs the teacher's). ``config``: that network's
    training settings. Returns the stage's metrics rows."""
    if modality == GENKD_TEACHER:
        parts = _teacher_parts(run, settings, config, source)
    else:
        parts = _student_parts(run, modality, settings, config, source)
    return _fit(run, parts, settings, config, resume, progress, on_epoch_end)


def _teacher_parts(run: RunDir, settings: GenKDSettings, config: TrainConfig, source: DataSource) -> _Parts:
    """The I-frame network, frozen (its BatchNorm in eval mode), and a fresh branch to train."""
    net = load_stage_network(run, GENKD_TEACHER, FINAL_TRAIN_STAGE)
    net.set_trainable("ics")  # features/classify use the backbone alone: all of it frozen
    torch.manual_seed(derive_seed(config.seed, GENKD_TEACHER_STAGE, "init"))
    branch = GenKDStudent(net.backbone.stage_channels[-1])
    return _Parts(
        GENKD_TEACHER_STAGE,
        settings.teacher_epochs,
        net,
        branch,
        branch,
        build_optimizer(branch.branch.cvae, settings.cvae_optim),
        build_optimizer(branch.branch.attention, settings.network_optim),
        open_split_data(source, config, (GENKD_TEACHER,)).train,
    )


def _student_parts(run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource) -> _Parts:
    """The student from its ``backbone`` weights with attention reweighting before its final
    head, its branch and adapters, and the trained teacher."""
    teacher_net = load_stage_network(run, GENKD_TEACHER, FINAL_TRAIN_STAGE)
    teacher_channels = teacher_net.backbone.stage_channels[-1]
    teacher = GenKDBranch(teacher_channels)
    load_weights(run.existing_checkpoint(GENKD_TEACHER_STAGE, GENKD_TEACHER), teacher)
    net = load_stage_network(run, modality, "backbone")
    torch.manual_seed(derive_seed(config.seed, GENKD_STAGE, modality, "init"))
    branch = GenKDStudent(net.backbone.stage_channels[-1], teacher_channels)
    assert branch.adapter is not None  # separately trained networks: channels never correspond
    attach_attention(net, branch.branch.attention)
    net.set_trainable("backbone")
    cvae_part = nn.ModuleDict({"cvae": branch.branch.cvae, "adapter": branch.adapter.features})
    network_part = nn.ModuleDict({"net": net, "adapter": branch.adapter.attention})
    return _Parts(
        GENKD_STAGE,
        settings.epochs,
        net,
        branch,
        nn.ModuleDict({"net": net, "genkd": branch}),
        build_optimizer(cvae_part, settings.cvae_optim),
        build_optimizer(network_part, settings.network_optim),
        open_split_data(source, config, (modality, GENKD_TEACHER)).train,
        open_split_data(source, config, (modality,)).val,
        (teacher_net, teacher),
    )


def _fit(
    run: RunDir,
    parts: _Parts,
    settings: GenKDSettings,
    config: TrainConfig,
    resume: bool,
    progress: ProgressFactory,
    on_epoch_end: EpochCallback | None,
) -> list[dict[str, Any]]:
    """The resumable epoch loop of one stage; keeps the best epoch on ``val_set`` (or the last)."""
    stage, modality, epochs, teacher = parts.stage, parts.net.modality, parts.epochs, parts.teacher
    device = resolve_device(config.device)
    modules = [parts.trained, parts.net, *(teacher or ())]
    for module in modules:
        module.to(device)
    state = _restore(run, parts, _record(settings, config, teacher is None), resume)
    steps = len(parts.train_set) // config.batch_size  # type: ignore[arg-type]
    if steps == 0:
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(parts.train_set)} training clips")
    for epoch in range(state.epochs_done, epochs):
        started = time.perf_counter()
        seed_all(derive_seed(config.seed, stage, modality, epoch))
        if hasattr(parts.train_set, "set_epoch"):
            parts.train_set.set_epoch(epoch)
        loader = DataLoader(
            parts.train_set,
            batch_size=config.batch_size,
            shuffle=True,
            generator=generator(derive_seed(config.seed, stage, modality, epoch, "loader")),
            drop_last=True,
            num_workers=config.workers,
            worker_init_fn=worker_init_fn,
        )
        factor = lr_factor(settings.schedule, epoch, 1, epochs)
        set_lr(parts.cvae_optimizer, settings.cvae_optim.lr, factor)
        set_lr(parts.network_optimizer, settings.network_optim.lr, factor)
        losses = genkd_epoch(
            _Batches(loader, modality, None if teacher is None else teacher[0].modality, device),
            epoch,
            parts.net,
            parts.branch,
            parts.cvae_optimizer,
            parts.network_optimizer,
            *(teacher or (None, None)),
            settings.loss,
            progress=progress,
        )
        if not all(math.isfinite(v) for v in losses.values()):
            raise FlatkdError(f"{stage} {modality}: a loss became non-finite at epoch {epoch}; lower the learning rates")
        row: dict[str, Any] = {"epoch": epoch, "lr": settings.network_optim.lr * factor, **losses}
        improved = parts.val_set is None
        if parts.val_set is not None:
            logits, labels = predict(parts.net, parts.val_set, config, desc=f"{stage} {modality} val", progress=progress)
            row["val_acc"] = float(exit_accuracy(logits, labels)[-1])
            improved = row["val_acc"] > state.best_metric
        row["seconds"] = time.perf_counter() - started
        state.history.append(row)
        if improved:
            state.best_metric, state.best_epoch = row.get("val_acc", -math.inf), epoch
        state.epochs_done = epoch + 1
        _commit(run, parts, state, improved)
        if on_epoch_end is not None:
            on_epoch_end({"stage": stage, "modality": modality, **row})
    for module in modules:
        module.to("cpu")
    if parts.val_set is not None:
        load_weights(run.checkpoint_path(stage, modality), parts.net)
    return state.history


def _best_weights(parts: _Parts) -> nn.Module:
    """What the stage's checkpoint holds: the student network, or the teacher's branch."""
    return parts.branch.branch if parts.stage == GENKD_TEACHER_STAGE else parts.net


def _commit(run: RunDir, parts: _Parts, state: ResumeState, improved: bool) -> None:
    """Best weights (if improved), then the resume state (the commit point), then metrics rows."""
    modality = parts.net.modality
    if improved:
        meta = {"stage": parts.stage, "modality": modality, "epoch": state.best_epoch}
        save_weights(run.checkpoint_path(parts.stage, modality), _best_weights(parts), meta)
    state.model = parts.trained.state_dict()
    state.optimizer = {"cvae": parts.cvae_optimizer.state_dict(), "network": parts.network_optimizer.state_dict()}
    save_resume(run.resume_path(parts.stage, modality), state)
    run.write_metrics(parts.stage, modality, state.history)


def _record(settings: GenKDSettings, config: TrainConfig, teacher: bool) -> dict[str, Any]:
    """The settings a stage's numbers depend on (kept in its resume state)."""
    genkd = to_dict(settings)
    genkd.pop("epochs" if teacher else "teacher_epochs")
    return {"genkd": genkd, "seed": config.seed, "batch_size": config.batch_size}


def _check_same(run: RunDir, stage: str, modality: str, recorded: dict[str, Any], settings: dict[str, Any]) -> None:
    if recorded != settings:
        changed = sorted(k for k in set(recorded["genkd"]) | set(settings["genkd"])
                         if recorded["genkd"].get(k) != settings["genkd"].get(k))  # fmt: skip
        changed += [k for k in ("seed", "batch_size") if recorded.get(k) != settings.get(k)]
        raise ConfigError(
            f"stage '{stage}' of {modality} in {run.path} ran with other settings ({', '.join(changed)});"
            " use the same genkd settings or choose a new --run"
        )


def _restore(run: RunDir, parts: _Parts, settings: dict[str, Any], resume: bool) -> ResumeState:
    path = run.resume_path(parts.stage, parts.net.modality)
    fresh = ResumeState(0, -math.inf, -1, [], settings, {}, {})
    if not path.is_file():
        return fresh
    if not resume:
        raise FlatkdError(
            f"{run.path} already has stage '{parts.stage}' of {parts.net.modality}; pass --resume to continue"
            " it or choose a new --run"
        )
    state = load_resume(path)
    _check_same(run, parts.stage, parts.net.modality, state.settings, settings)
    apply_weights(parts.trained, state.model, path)
    try:
        parts.cvae_optimizer.load_state_dict(state.optimizer["cvae"])
        parts.network_optimizer.load_state_dict(state.optimizer["network"])
    except (ValueError, KeyError) as exc:
        raise FlatkdError(f"{path}: optimiser state does not fit ({exc}); delete it to restart") from None
    return state
