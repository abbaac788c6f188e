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

Like for like: every IC stage draws its batch order and per-epoch seeds from the stream
:data:`IC_SEED_STREAM` (``flatkd train``'s ``ic-ce``), never from the method's name, and starts
from the ICs saved in the ``backbone`` checkpoint, so for one run seed every method sees the same
batches from the same initial ICs and differs only in its loss.

Checkpoint selection (``select``) on the validation split: ``network`` keeps the epoch with the
best mean accuracy over the ICs (one epoch for all, as ``ic-ce``); ``per-ic`` keeps each IC ``i``
at its own best epoch ``argmax_e acc_val(i, e)`` (first maximum). The ICs are disjoint and the
backbone is frozen, so the composite is a network the stage actually passed through IC by IC.
Either way ``<modality>.selection.json`` beside the checkpoint records, per IC, the epoch kept,
its validation accuracy and the teacher it was trained under at that epoch
(:meth:`flatkd.distill.pkd.PKDSchedule.teacher_at`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from flatkd.config import to_dict
from flatkd.distill.pkd import PKDLoss, PKDSchedule, build_schedule
from flatkd.errors import ConfigError, InputFileError
from flatkd.fileio import load_tensors, read_json, save_tensors, write_text
from flatkd.landscape.chain import Chain
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.data_source import DataSource, open_split_data
from flatkd.runs.distill_settings import DistillConfig
from flatkd.runs.methods import Method
from flatkd.runs.networks import load_stage_network
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import Stage
from flatkd.runs.training import export_logits
from flatkd.train import Batch, StageResult, TeacherLogits, TrainConfig, fit_loss
from flatkd.train.checkpoint import ResumeState, load_resume, save_weights
from flatkd.train.distributed import LOCAL, Dist
from flatkd.train.loop import EpochCallback, first_difference, stage_settings

log = logging.getLogger(__name__)

#: The batch order and per-epoch seeds of every IC stage, whatever the method (module docstring).
IC_SEED_STREAM: str = Stage.IC_CE

Selection = Literal["network", "per-ic"]
SELECTIONS: tuple[Selection, ...] = ("network", "per-ic")
#: teacher label of an IC trained on labels (the CE variant)
NO_TEACHER = "none"


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


def ic_settings(method: Method, schedule: PKDSchedule, config: DistillConfig, select: Selection) -> dict[str, Any]:
    """What an IC stage's numbers depend on besides :func:`flatkd.train.loop.stage_settings`:
    the seed stream where it is not the stage's own name, the teacher schedule and KD loss of the
    distillation variants, and a per-IC selection. Empty for the CE variant selected as a whole,
    so that ``ic-ce`` trained by ``flatkd train`` matches. Recorded in the resume state."""
    settings: dict[str, Any] = {}
    if method.stage != IC_SEED_STREAM:
        settings["seed_stream"] = str(IC_SEED_STREAM)
    if schedule.teachers:
        settings |= {
            "teachers": [t.label for t in schedule.teachers],
            "phase_starts": list(schedule.starts),
            "kd": to_dict(config.kd),
        }
    if select != "network":
        settings["select"] = select
    return settings


def stage_complete(
    run: RunDir,
    method: Method,
    modality: str,
    config: DistillConfig,
    train_config: TrainConfig,
    chain: Chain | None,
    select: Selection = "network",
) -> bool:
    """Whether ``method``'s stage of ``modality`` finished its epochs and saved its logits. A
    finished stage trained with other settings (seed stream, schedule, loss, selection, ...) is a
    :class:`ConfigError`: reusing it would report numbers these settings do not give."""
    state_path = run.resume_path(method.stage, modality)
    if not _finished_files(run, method.stage, modality):
        return False
    state = load_resume(state_path)
    schedule = ic_schedule(method, modality, config, chain)
    expected = stage_settings(train_config, config.ics) | ic_settings(method, schedule, config, select)
    changed = first_difference(state.settings, expected)
    if changed is not None:
        raise ConfigError(
            f"{changed} differs from the finished '{method.stage}' stage of {modality} in {run.path}; delete"
            f" {state_path.parent} to retrain it with these settings, or choose a new --run"
        )
    return state.epochs_done >= config.ics.epochs


def epochs_finished(run: RunDir, stage: str, modality: str, epochs: int) -> bool:
    """Whether ``stage`` of ``modality`` ran ``epochs`` epochs and saved its logits (whatever its
    settings; :func:`stage_complete` also checks those)."""
    return _finished_files(run, stage, modality) and load_resume(run.resume_path(stage, modality)).epochs_done >= epochs


def _finished_files(run: RunDir, stage: str, modality: str) -> bool:
    logits = [run.logits_path(stage, modality, split) for split in ("val", "test")]
    return run.resume_path(stage, modality).is_file() and all(p.is_file() for p in logits)


def selection_path(run: RunDir, stage: str, modality: str) -> Path:
    """``checkpoints/<stage>/<modality>.selection.json``: the epoch and teacher of every IC kept."""
    return run.checkpoint_path(stage, modality).with_suffix(".selection.json")


def _per_ic_path(run: RunDir, stage: str, modality: str) -> Path:
    return run.checkpoint_path(stage, modality).with_suffix(".per-ic.safetensors")


def _ic_tensors(weights: Mapping[str, Tensor], index: int) -> dict[str, Tensor]:
    prefix = f"ics.{index}."
    return {k: v.detach().cpu().clone() for k, v in weights.items() if k.startswith(prefix)}


def _first_best(history: Sequence[Mapping[str, Any]], index: int) -> tuple[int, float]:
    """``(argmax_e, max_e)`` of IC ``index``'s validation accuracy over ``history`` (first max)."""
    scores = [row[f"val_acc_exit{index}"] for row in history]
    best = max(range(len(scores)), key=lambda e: (scores[e], -e))
    return int(history[best]["epoch"]), float(scores[best])


class PerICBest:
    """Each IC's weights at its best validation epoch so far, kept in ``path`` after every epoch
    (an ``on_epoch_end`` callback of :func:`flatkd.train.fit`; rank 0 writes).

    On a resume the store is checked against the resume state's history: a kill between the
    epoch's commit and this callback loses at most the last epoch's update, whose weights are the
    resume state's own, so it is replayed from there; anything else is an :class:`InputFileError`."""

    def __init__(self, model: torch.nn.Module, path: Path, ics: Sequence[int], env: Dist, state: ResumeState | None) -> None:
        self.model, self.path, self.ics, self.env = model, path, tuple(ics), env
        self.best = {i: (-1, -float("inf")) for i in self.ics}
        self.tensors: dict[str, Tensor] = {}
        if state is not None and state.history:
            self._restore(state)

    def _restore(self, state: ResumeState) -> None:
        stored = load_tensors(self.path) if self.path.is_file() else {}
        last = state.epochs_done - 1
        for i in self.ics:
            self.best[i] = _first_best(state.history, i)
            mine = _ic_tensors(stored, i) if self.best[i][0] != last else _ic_tensors(state.model, i)
            if not mine:
                raise InputFileError(f"{self.path}: lacks IC {i}'s best weights; delete the stage to retrain it")
            self.tensors |= mine

    def __call__(self, row: Mapping[str, Any]) -> None:
        improved = [i for i in self.ics if row[f"val_acc_exit{i}"] > self.best[i][1]]
        weights = self.model.state_dict()
        for i in improved:
            self.best[i] = (int(row["epoch"]), float(row[f"val_acc_exit{i}"]))
            self.tensors |= _ic_tensors(weights, i)
        if improved and self.env.is_main:
            save_tensors(self.path, self.tensors)

    def apply(self, model: torch.nn.Module) -> None:
        """Put every IC's kept weights into ``model`` (the rest of it unchanged)."""
        model.load_state_dict(model.state_dict() | self.tensors)


def network_selection(state: ResumeState, ics: Sequence[int]) -> list[tuple[int, float]]:
    """``(epoch, validation accuracy)`` of each IC at the stage's whole-network best epoch."""
    row = next(r for r in state.history if r["epoch"] == state.best_epoch)
    return [(state.best_epoch, float(row[f"val_acc_exit{i}"])) for i in ics]


def write_selection(
    path: Path, select: Selection, schedule: PKDSchedule, kept: Sequence[tuple[int, float]]
) -> None:
    """Record the epoch, validation accuracy and teacher of every IC kept (module docstring)."""
    rows = []
    for index, (epoch, accuracy) in enumerate(kept):
        teacher = schedule.teacher_at(epoch - 1)  # kept epochs count from 1, the schedule from 0
        rows.append({"exit": index, "epoch": epoch, "val_acc": accuracy, "teacher": teacher.label if teacher else NO_TEACHER})
    write_text(path, json.dumps({"select": select, "ics": rows}, indent=2) + "\n")


def read_selection(path: Path) -> dict[str, Any]:
    """The record :func:`write_selection` wrote."""
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("ics"), list):
        raise InputFileError(f"{path}: not a flatkd selection record; re-run the distillation stage")
    return record


def train_ics(
    run: RunDir,
    method: Method,
    modality: str,
    config: DistillConfig,
    train_configs: Mapping[str, TrainConfig],
    source: DataSource,
    chain: Chain | None,
    *,
    select: Selection = "network",
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> StageResult:
    """Train the ICs of ``modality``'s network into ``method.stage``, keep them as ``select``
    says, and save the logits of every exit on validation and test there. ``train_configs``: the
    training settings (seed, batch size, device, workers) of the student and its teachers;
    ``config``: the method's settings."""
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
    files = run.stage_files(method.stage, modality)
    per_ic = None
    if select == "per-ic":
        state = load_resume(files.resume) if resume and files.resume.is_file() else None
        per_ic = PerICBest(model, _per_ic_path(run, method.stage, modality), ics, env, state)
    model.set_trainable("ics")
    taught = f", teachers {', '.join(teachers)}" if teachers else ""
    with logged_stage(log, f"{method.stage} {modality}", f"{config.ics.epochs} epochs{taught}"):
        result = fit_loss(
            model,
            train_set,
            evaluation.val,
            files,
            stage=method.stage,
            config=train_config,
            stage_config=config.ics,
            loss=loss,
            monitor=ics,
            hooks=hooks,
            resume=resume,
            env=env,
            progress=progress,
            on_epoch_end=_chain_callbacks(per_ic, on_epoch_end),
            columns=loss.epoch_metrics,
            seed_stream=IC_SEED_STREAM,
            settings=ic_settings(method, schedule, config, select),
        )
    if per_ic is not None:
        per_ic.apply(model)
        kept = [per_ic.best[i] for i in ics]
    else:
        kept = network_selection(load_resume(files.resume), ics)
    if env.is_main:
        if per_ic is not None:
            meta = {"stage": method.stage, "modality": modality, "preset": train_config.preset, "select": select}
            save_weights(files.weights, model, meta | {"epochs": ",".join(str(e) for e, _ in kept)})
        write_selection(selection_path(run, method.stage, modality), select, schedule, kept)
    export_logits(run, method.stage, model, evaluation, train_config, env, progress)
    return result


def _chain_callbacks(*callbacks: EpochCallback | None) -> EpochCallback | None:
    """One callback calling each given one in turn (None when none is given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None

    def call(row: dict[str, Any]) -> None:
        for callback in given:
            callback(row)

    return call
