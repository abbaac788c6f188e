"""Generative feature KD on a run's networks: the I-frame teacher's branch, then each student.

Wang et al., "Generative Model-based Feature Knowledge Distillation for Action Recognition", AAAI
2024 (pieces in :mod:`flatkd.distill.genkd`, the two-stage epoch, a step of the training loop
:func:`flatkd.train.fit`, in :mod:`flatkd.distill.genkd_train`). The distilled feature map is the last backbone stage's output,
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

Both stages run in the one training loop, so they resume (a resume state after every epoch:
every trained weight, both optimisers, the metrics history), run under torchrun (DDP), use bf16
autocast on CUDA and write their rows of ``metrics.csv`` (the mean of every loss term as
``cvae_<term>``/``net_<term>``, learning rate on the stage's schedule, validation accuracy for
students, seconds, throughput, data wait) like every other stage.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from flatkd.config import to_dict
from flatkd.distill.genkd import GenKDBranch, GenKDStudent
from flatkd.distill.genkd_train import GenKDStep
from flatkd.errors import ConfigError
from flatkd.progress import ProgressFactory, no_progress
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
from flatkd.train.optim import build_optimizer
from flatkd.train.seeding import derive_seed


def genkd_stage(modality: str) -> str:
    """``genkd-teacher`` for the I-frame network, ``genkd`` for a student."""
    return GENKD_TEACHER_STAGE if modality == GENKD_TEACHER else GENKD_STAGE


def genkd_complete(run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig) -> bool:
    """Whether ``modality``'s generative-KD stage ran all its epochs (with these settings: else an
    error)."""
    teacher = modality == GENKD_TEACHER
    stage = genkd_stage(modality)
    path = run.resume_path(stage, modality)
    if not path.is_file():
        return False
    state = load_resume(path)
    if state.epochs_done < (settings.teacher_epochs if teacher else settings.epochs):
        return False
    changed = first_difference(state.settings, _record(settings, config, teacher))
    if changed is not None:
        raise ConfigError(
            f"stage '{stage}' of {modality} in {run.path} ran with another {changed.removeprefix('setting ')};"
            " use the same genkd settings or choose a new --run"
        )
    return True


def train_genkd(
    run: RunDir,
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
    """``modality``'s generative-KD stage: the I-frame teacher's branch (stage ``genkd-teacher``)
    or a student's fine-tuning (stage ``genkd``; needs the teacher's). ``config``: that network's
    training settings."""
    teacher = modality == GENKD_TEACHER
    spec, step = (_teacher_stage if teacher else _student_stage)(run, modality, settings, config, source)
    return fit(
        spec, step, run.stage_files(spec.stage, modality),
        resume=resume, env=env, progress=progress, on_epoch_end=on_epoch_end,
    )  # fmt: skip


def _optimizers(cvae: nn.Module, network: nn.Module, settings: GenKDSettings) -> dict[str, Optimised]:
    return {
        "cvae": Optimised(build_optimizer(cvae, settings.cvae_optim), settings.cvae_optim.lr),
        "network": Optimised(build_optimizer(network, settings.network_optim), settings.network_optim.lr),
    }


def _spec(stage: str, net: Any, epochs: int, train: Any, val: Any, settings: GenKDSettings, config: TrainConfig) -> FitSpec:
    record = _record(settings, config, stage == GENKD_TEACHER_STAGE)
    return FitSpec(stage, net, train, val, config, epochs, settings.schedule, record, (-1,))


def _teacher_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, GenKDStep]:
    """The I-frame network, frozen (its BatchNorm in eval mode), and a fresh branch to train; the
    branch after the last epoch is kept."""
    net = load_stage_network(run, modality, FINAL_TRAIN_STAGE)
    net.set_trainable("ics")  # features/classify use the backbone alone: all of it frozen
    torch.manual_seed(derive_seed(config.seed, GENKD_TEACHER_STAGE, "init"))
    branch = GenKDStudent(net.backbone.stage_channels[-1])
    step = GenKDStep(
        net, branch, _optimizers(branch.branch.cvae, branch.branch.attention, settings),
        modality=modality, kept=branch.branch, config=settings.loss,
    )  # fmt: skip
    train = open_split_data(source, config, (modality,)).train
    return _spec(GENKD_TEACHER_STAGE, net, settings.teacher_epochs, train, None, settings, config), step


def _student_stage(
    run: RunDir, modality: str, settings: GenKDSettings, config: TrainConfig, source: DataSource
) -> tuple[FitSpec, GenKDStep]:
    """The student from its ``backbone`` weights with attention reweighting before its final
    head, its branch and adapters, and the trained teacher; the best epoch by the final exit's
    validation accuracy is kept."""
    teacher_net = load_stage_network(run, GENKD_TEACHER, FINAL_TRAIN_STAGE)
    teacher_channels = teacher_net.backbone.stage_channels[-1]
    teacher = GenKDBranch(teacher_channels)
    load_weights(run.existing_checkpoint(GENKD_TEACHER_STAGE, GENKD_TEACHER), teacher)
    net = load_stage_network(run, modality, Stage.BACKBONE)
    torch.manual_seed(derive_seed(config.seed, GENKD_STAGE, modality, "init"))
    branch = GenKDStudent(net.backbone.stage_channels[-1], teacher_channels)
    assert branch.adapter is not None  # separately trained networks: channels never correspond
    attach_attention(net, branch.branch.attention)
    net.set_trainable("backbone")
    cvae_part = nn.ModuleDict({"cvae": branch.branch.cvae, "adapter": branch.adapter.features})
    network_part = nn.ModuleDict({"net": net, "adapter": branch.adapter.attention})
    step = GenKDStep(
        net, branch, _optimizers(cvae_part, network_part, settings), modality=modality, kept=net,
        teacher_net=teacher_net, teacher=teacher, teacher_modality=GENKD_TEACHER, config=settings.loss,
    )  # fmt: skip
    train = open_split_data(source, config, (modality, GENKD_TEACHER)).train
    val = open_split_data(source, config, (modality,)).val
    return _spec(GENKD_STAGE, net, settings.epochs, train, val, settings, config), step


def _record(settings: GenKDSettings, config: TrainConfig, teacher: bool) -> dict[str, Any]:
    """The settings a stage's numbers depend on (kept in its resume state)."""
    genkd = to_dict(settings)
    genkd.pop("epochs" if teacher else "teacher_epochs")
    return {"genkd": genkd, "seed": config.seed, "batch_size": config.batch_size}
