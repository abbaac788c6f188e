"""Generative feature KD on a run's networks: the I-frame teacher's branch, then each student;
and the two controls that fine-tune the same students without the teacher.

Wang et al., "Generative Model-based Feature Knowledge Distillation for Action Recognition", AAAI
2024 (pieces in :mod:`flatkd.distill.genkd`, the two-stage epoch, a step of the training loop
:func:`flatkd.train.fit`, in :mod:`flatkd.distill.genkd_train`). The distilled feature map is the
last backbone stage's output, the TSN segments as time steps
(:meth:`flatkd.models.MultiExitNet.features`).

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
3. The controls, per student, each into its own stage and with the ``genkd`` settings:
   ``genkd-noteacher`` is stage 2 with no teacher (no adapter, GD or AD; the I-frames are never
   read), ``genkd-ce`` fine-tunes the backbone and final head with label CE on the final exit
   alone (the backbone stage's loss), with the network optimiser and schedule of stage 2 and one
   pass per epoch: as many network updates as stage 2's network phase.

The three student fine-tunes share the ``genkd`` seed stream (:attr:`flatkd.train.FitSpec.
seed_stream`) and the same initial seed, so for one seed they see the same batches in the same
order and ``genkd-noteacher`` starts from ``genkd``'s attention head and CVAE.

All stages run in the one training loop, so they resume (a resume state after every epoch:
every trained weight, the optimisers, the metrics history), run under torchrun (DDP), use bf16
autocast on CUDA and write their rows of ``metrics.csv`` (the mean of every loss term as
``cvae_<term>``/``net_<term>``, the reconstruction weight, the gradient ratios ``ad_grad_ratio``
and ``recon_grad_ratio`` of :class:`flatkd.distill.genkd_train.GenKDStep`, learning rate on the
stage's schedule, validation accuracy for students, seconds, throughput, data wait) like every
other stage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from flatkd.config import to_dict
from flatkd.distill.genkd import GenKDBranch, GenKDStudent
from flatkd.distill.genkd_train import GenKDStep
from flatkd.errors import ConfigError
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.data_source import DataSource, open_split_data
from flatkd.runs.distill_settings import GenKDSettings
from flatkd.runs.methods import GENKD_STAGE, GENKD_TEACHER, GENKD_TEACHER_STAGE
from flatkd.runs.networks import attach_attention, load_stage_network
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE, Stage
from flatkd.train import Dist, FitSpec, Optimised, StageResult, TrainConfig, fit
from flatkd.train.checkpoint import load_resume, load_weights
from flatkd.train.distributed import LOCAL
from flatkd.train.loop import EpochCallback, first_difference
from flatkd.train.losses import ExitCrossEntropy
from flatkd.train.optim import build_optimizer
from flatkd.train.seeding import derive_seed
from flatkd.train.steps import LossStep, Step

log = logging.getLogger(__name__)

def finetune_networks(finetune: Stage, students: Sequence[str]) -> tuple[str, ...]:
    """The networks a fine-tune trains, in order: the I-frame teacher's branch first for
    generative KD (its controls need no teacher), then ``students``."""
    return (GENKD_TEACHER, *students) if finetune == GENKD_STAGE else tuple(students)


def genkd_stage(finetune: Stage, modality: str) -> str:
    """``genkd-teacher`` for the I-frame network, ``finetune`` for a student."""
    return GENKD_TEACHER_STAGE if modality == GENKD_TEACHER else finetune


def genkd_complete(
    run: RunDir, finetune: Stage, modality: str, settings: GenKDSettings, config: TrainConfig
) -> bool:
    """Whether ``modality``'s stage of ``finetune`` ran all its epochs (with these settings: else
    an error)."""
    stage = genkd_stage(finetune, modality)
    path = run.resume_path(stage, modality)
    if not path.is_file():
        return False
    state = load_resume(path)
    if state.epochs_done < (settings.teacher_epochs if stage == GENKD_TEACHER_STAGE else settings.epochs):
        return False
    changed = first_difference(state.settings, _record(settings, config, stage))
    if changed is not None:
        raise ConfigError(
            f"stage '{stage}' of {modality} in {run.path} ran with another {changed.removeprefix('setting ')};"
            " use the same genkd settings or choose a new --run"
        )
    return True


def train_genkd(
    run: RunDir,
    finetune: Stage,
    modality: str,
    settings: GenKDSettings,
    config: TrainConfig,
    source: DataSource,
    *,
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> StageResult:
    """``modality``'s stage of ``finetune``: the I-frame teacher's branch (stage ``genkd-teacher``)
    or a student's fine-tuning (stage ``genkd``, which needs the teacher's, or a control).
    ``config``: that network's training settings."""
    spec, step = stage_spec(run, finetune, modality, settings, config, source)
    with logged_stage(log, f"{spec.stage} {modality}", f"{spec.epochs} epochs"):
        return fit(
            spec, step, run.stage_files(spec.stage, modality),
            resume=resume, env=env, progress=progress, on_epoch_end=on_epoch_end,
        )  # fmt: skip


def stage_spec(
    run: RunDir, finetune: Stage, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, Step]:
    """What :func:`train_genkd` hands the training loop for ``modality``'s stage of ``finetune``:
    the stage's :class:`FitSpec` and its training step."""
    return _BUILDERS[genkd_stage(finetune, modality)](run, modality, settings, config, source)


def _optimizers(cvae: nn.Module, network: nn.Module, settings: GenKDSettings) -> dict[str, Optimised]:
    return {
        "cvae": Optimised(build_optimizer(cvae, settings.cvae_optim), settings.cvae_optim.lr),
        "network": Optimised(build_optimizer(network, settings.network_optim), settings.network_optim.lr),
    }


def _spec(stage: str, net: Any, train: Any, val: Any, settings: GenKDSettings, config: TrainConfig) -> FitSpec:
    """The stage's :class:`FitSpec`; every student fine-tune draws from the ``genkd`` seed stream."""
    teacher = stage == GENKD_TEACHER_STAGE
    epochs = settings.teacher_epochs if teacher else settings.epochs
    record = _record(settings, config, stage)
    stream = "" if teacher else GENKD_STAGE
    return FitSpec(stage, net, train, val, config, epochs, settings.schedule, record, (-1,), seed_stream=stream)


def _teacher_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, Step]:
    """The I-frame network, frozen (its BatchNorm in eval mode), and a fresh branch to train; the
    branch after the last epoch is kept."""
    net = load_stage_network(run, modality, FINAL_TRAIN_STAGE)
    net.set_trainable("ics")  # features/classify use the backbone alone: all of it frozen
    torch.manual_seed(derive_seed(config.seed, GENKD_TEACHER_STAGE, "init"))
    branch = GenKDStudent(net.backbone.stage_channels[-1])
    step = GenKDStep(
        net, branch, _optimizers(branch.branch.cvae, branch.branch.attention, settings),
        modality=modality, kept=branch.branch, epochs=settings.teacher_epochs, config=settings.loss,
    )  # fmt: skip
    train = open_split_data(source, config, (modality,)).train
    return _spec(GENKD_TEACHER_STAGE, net, train, None, settings, config), step


def _student_network(run: RunDir, modality: str, config: TrainConfig) -> Any:
    """The student from its ``backbone`` weights, backbone and final head trainable, the init seed
    of every student fine-tune drawn (so their fresh modules start alike)."""
    net = load_stage_network(run, modality, Stage.BACKBONE)
    net.set_trainable("backbone")
    torch.manual_seed(derive_seed(config.seed, GENKD_STAGE, modality, "init"))
    return net


def _student_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, Step]:
    """The student with attention reweighting before its final head, its branch and adapters, and
    the trained teacher; the best epoch by the final exit's validation accuracy is kept."""
    teacher_net = load_stage_network(run, GENKD_TEACHER, FINAL_TRAIN_STAGE)
    teacher_channels = teacher_net.backbone.stage_channels[-1]
    teacher = GenKDBranch(teacher_channels)
    load_weights(run.existing_checkpoint(GENKD_TEACHER_STAGE, GENKD_TEACHER), teacher)
    net = _student_network(run, modality, config)
    branch = GenKDStudent(net.backbone.stage_channels[-1], teacher_channels)
    assert branch.adapter is not None  # separately trained networks: channels never correspond
    attach_attention(net, branch.branch.attention)
    cvae_part = nn.ModuleDict({"cvae": branch.branch.cvae, "adapter": branch.adapter.features})
    network_part = nn.ModuleDict({"net": net, "adapter": branch.adapter.attention})
    step = GenKDStep(
        net, branch, _optimizers(cvae_part, network_part, settings), modality=modality, kept=net,
        epochs=settings.epochs, teacher_net=teacher_net, teacher=teacher, teacher_modality=GENKD_TEACHER,
        config=settings.loss,
    )  # fmt: skip
    train = open_split_data(source, config, (modality, GENKD_TEACHER)).train
    val = open_split_data(source, config, (modality,)).val
    return _spec(GENKD_STAGE, net, train, val, settings, config), step


def _noteacher_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, Step]:
    """Control: :func:`_student_stage` without the teacher (no adapter, no GD, no AD)."""
    net = _student_network(run, modality, config)
    branch = GenKDStudent(net.backbone.stage_channels[-1])
    attach_attention(net, branch.branch.attention)
    step = GenKDStep(
        net, branch, _optimizers(branch.branch.cvae, net, settings), modality=modality, kept=net,
        epochs=settings.epochs, config=settings.loss,
    )  # fmt: skip
    return _spec(Stage.GENKD_NOTEACHER, net, *_student_data(source, config, modality), settings, config), step


def _ce_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, Step]:
    """Control: label CE on the final exit alone, the network optimiser and schedule of genkd."""
    net = _student_network(run, modality, config)
    step = LossStep(net, ExitCrossEntropy((-1,)), settings.network_optim)
    return _spec(Stage.GENKD_CE, net, *_student_data(source, config, modality), settings, config), step


def _student_data(source: DataSource, config: TrainConfig, modality: str) -> tuple[Any, Any]:
    """Training and validation splits of the student's modality alone."""
    splits = open_split_data(source, config, (modality,))
    return splits.train, splits.val


_BUILDERS = {
    GENKD_TEACHER_STAGE: _teacher_stage,
    Stage.GENKD: _student_stage,
    Stage.GENKD_NOTEACHER: _noteacher_stage,
    Stage.GENKD_CE: _ce_stage,
}


def _record(settings: GenKDSettings, config: TrainConfig, stage: str) -> dict[str, Any]:
    """The settings a stage's numbers depend on (kept in its resume state): the CE control uses
    the epochs, network optimiser and schedule alone; the teacher stage no student epochs."""
    genkd = to_dict(settings)
    if stage == Stage.GENKD_CE:
        genkd = {k: genkd[k] for k in ("epochs", "network_optim", "schedule")}
    else:
        genkd.pop("epochs" if stage == GENKD_TEACHER_STAGE else "teacher_epochs")
    return {"genkd": genkd, "seed": config.seed, "batch_size": config.batch_size}
