"""Training one network's internal classifiers (ICs) with a distillation method, backbone frozen.

The network starts from the best weights of the method's start stage (``backbone``, or ``genkd``
for generative-KD backbones), exactly like ``flatkd train``'s ``ic-ce`` stage: same ICs at
initialisation, same frozen backbone (BatchNorm in eval mode), same IC stage settings unless the
user changes them. The loss is :class:`flatkd.distill.pkd.PKDLoss` for every method (the CE
baseline is its ``ce`` variant, label CE averaged over the ICs, the same as ``ic-ce``'s loss); the
external teachers of the schedule run through :class:`flatkd.train.TeacherLogits`, each on its own
modality of the same clips (the training set serves the student's and the teachers' modalities
together), only while they teach. Which teacher each epoch used goes to ``metrics.csv``
(column ``teacher``: ``own``, a modality, or ``labels`` for CE).

Cost: the frozen backbone builds no autograd graph (its parameters and inputs need no gradient),
so the backward pass runs through the ICs alone, and the own-head teacher is the student's final
exit of the same forward pass. The validation and test sets serve the student's modality only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from flatkd.distill.pkd import PKDLoss, PKDSchedule, build_schedule
from flatkd.errors import ConfigError
from flatkd.landscape.chain import Chain
from flatkd.progress import ProgressFactory, no_progress
from flatkd.runs.data_source import DataSource, open_split_data
from flatkd.runs.distill_settings import DistillConfig
from flatkd.runs.methods import Method
from flatkd.runs.networks import load_stage_network
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import export_logits
from flatkd.train import Batch, StageResult, TeacherLogits, TrainConfig, fit_loss
from flatkd.train.checkpoint import load_resume
from flatkd.train.distributed import LOCAL, Dist
from flatkd.train.loop import EpochCallback


class RecordedTeachers:
    """A :class:`PKDLoss` that notes, per epoch, which teachers it saw: the teacher networks whose
    logits the hooks computed for the batch, else ``own`` (the student's final head) or ``labels``
    (the CE baseline). Goes to ``metrics.csv`` as column ``teacher``."""

    def __init__(self, loss: PKDLoss) -> None:
        self.loss = loss
        self.used: dict[int, set[str]] = {}

    def __call__(self, exit_logits: Sequence[Tensor], batch: Batch) -> Tensor:
        ran = sorted(batch.teacher_logits)
        label = "+".join(ran) if ran else "labels" if self.loss.schedule.teacher_at(batch.epoch) is None else "own"
        self.used.setdefault(batch.epoch, set()).add(label)
        return self.loss(exit_logits, batch)

    def epoch_metrics(self, epoch: int) -> dict[str, str]:
        return {"teacher": "+".join(sorted(self.used.get(epoch, ())))}


def ic_schedule(method: Method, modality: str, config: DistillConfig, chain: Chain | None) -> PKDSchedule:
    """The teacher schedule of ``modality``'s ICs under ``method`` (``chain`` for the chain-ordered
    variants)."""
    order = chain.order if chain is not None else ()
    return build_schedule(order, modality, config.ics.epochs, config.pkd_config(method))


def check_teacher_inputs(student: str, teachers: Sequence[str], configs: Mapping[str, TrainConfig]) -> None:
    """Teachers read the same clips at the same size and segments as the student (the data
    loader serves all modalities of a batch alike); ``configs``: training settings by modality."""
    mine = configs[student]
    for teacher in teachers:
        theirs = configs[teacher]
        if (theirs.input_size, theirs.num_segments) != (mine.input_size, mine.num_segments):
            raise ConfigError(
                f"the {teacher} teacher was trained at input_size {theirs.input_size}, {theirs.num_segments}"
                f" segments, the {student} student at {mine.input_size}, {mine.num_segments}; train both alike"
            )


def stage_complete(run: RunDir, stage: str, modality: str, epochs: int) -> bool:
    """Whether ``stage`` of ``modality`` finished ``epochs`` epochs and saved its logits."""
    state = run.resume_path(stage, modality)
    logits = [run.logits_path(stage, modality, split) for split in ("val", "test")]
    return state.is_file() and all(p.is_file() for p in logits) and load_resume(state).epochs_done >= epochs


def train_ics(
    run: RunDir,
    method: Method,
    modality: str,
    config: DistillConfig,
    train_configs: Mapping[str, TrainConfig],
    source: DataSource,
    chain: Chain | None,
    *,
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> StageResult:
    """Train the ICs of ``modality``'s network into ``method.stage`` and save the logits of every
    exit on validation and test there. ``train_configs``: the training settings (seed, batch size,
    device, workers) of the student and its teachers; ``config``: the method's settings."""
    schedule = ic_schedule(method, modality, config, chain)
    teachers = schedule.external_teachers()
    check_teacher_inputs(modality, teachers, train_configs)
    train_config = train_configs[modality]
    model = load_stage_network(run, modality, method.start_stage(modality))
    networks: Mapping[str, Any] = {t: load_stage_network(run, t, method.teacher_stage(t)) for t in teachers}
    loss = RecordedTeachers(PKDLoss(schedule, config.kd))
    hooks = [TeacherLogits(networks, active=loss.loss.active_teachers)] if networks else []
    train_set = open_split_data(source, train_config, (modality, *teachers)).train
    evaluation = open_split_data(source, train_config, (modality,))
    ics = tuple(range(model.num_exits - 1))
    model.set_trainable("ics")
    result = fit_loss(
        model,
        train_set,
        evaluation.val,
        run.stage_files(method.stage, modality),
        stage=method.stage,
        config=train_config,
        stage_config=config.ics,
        loss=loss,
        monitor=ics,
        hooks=hooks,
        resume=resume,
        env=env,
        progress=progress,
        on_epoch_end=on_epoch_end,
        columns=loss.epoch_metrics,
    )
    export_logits(run, method.stage, model, evaluation, train_config, env, progress)
    return result
