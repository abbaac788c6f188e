"""``flatkd train`` and ``flatkd evaluate`` as library calls, on top of :func:`fit`.

:func:`train_network` trains one modality's network in CoViAR's order: first the backbone with
label cross-entropy on its final exit (stage ``backbone``; the ICs are frozen and unused), then the
internal classifiers with the backbone frozen (stage ``ic-ce``), each stage starting from the best
weights of the one before. After each stage the logits of every exit on validation and test go to
the run directory; at the end the MACs of every exit go to ``macs.json``.

:func:`load_network` rebuilds a trained network from a run directory alone, for later commands.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch.utils.data import Dataset

from flatkd.config import from_dict
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.views import EvalView, ViewDataset
from flatkd.modalities import CHANNELS
from flatkd.models import MultiExitNet, build_model, exit_costs, load_backbone_weights
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.rundir import RunDir, non_finite_network_error
from flatkd.runs.stages import FINAL_TRAIN_STAGE, Stage
from flatkd.train.checkpoint import load_weights
from flatkd.train.config import TrainConfig
from flatkd.train.distributed import LOCAL, Dist
from flatkd.train.evaluation import predict
from flatkd.train.loop import EpochCallback, StageResult, fit_loss
from flatkd.train.losses import ExitCrossEntropy
from flatkd.train.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Datasets of one modality (or more, for teachers): training, validation and test."""

    train: Dataset
    val: Dataset
    test: Dataset


def train_network(
    run: RunDir,
    modality: str,
    config: TrainConfig,
    data: SplitData,
    num_classes: int,
    *,
    resume: bool = False,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> list[StageResult]:
    """Train ``modality``'s multi-exit network into ``run``: stage ``backbone``, then ``ic-ce``."""
    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build_model(config.preset, modality, num_classes, config.exits)
    if config.weights is not None:
        load_backbone_weights(model, config.weights, config.preset)
    common: dict[str, Any] = {
        "config": config,
        "resume": resume,
        "env": env,
        "progress": progress,
        "on_epoch_end": on_epoch_end,
    }
    model.set_trainable("backbone")
    with logged_stage(log, f"{Stage.BACKBONE} {modality}", f"{config.backbone.epochs} epochs"):
        results = [
            fit_loss(
                model,
                data.train,
                data.val,
                run.stage_files(Stage.BACKBONE, modality),
                stage=Stage.BACKBONE,
                stage_config=config.backbone,
                loss=ExitCrossEntropy((-1,)),
                monitor=(-1,),
                **common,
            )
        ]
    export_logits(run, Stage.BACKBONE, model, data, config, env, progress)
    ics = tuple(range(model.num_exits - 1))
    if ics:
        model.set_trainable("ics")
        with logged_stage(log, f"{FINAL_TRAIN_STAGE} {modality}", f"{config.ics.epochs} epochs"):
            results.append(
                fit_loss(
                    model,
                    data.train,
                    data.val,
                    run.stage_files(FINAL_TRAIN_STAGE, modality),
                    stage=FINAL_TRAIN_STAGE,
                    stage_config=config.ics,
                    loss=ExitCrossEntropy(ics),
                    monitor=ics,
                    **common,
                )
            )
        export_logits(run, FINAL_TRAIN_STAGE, model, data, config, env, progress)
    if env.is_main:
        record_macs(run, model, config)
    env.barrier()
    return results


def export_logits(
    run: RunDir,
    stage: str,
    model: MultiExitNet,
    data: SplitData,
    config: TrainConfig,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    view: EvalView | None = None,
) -> None:
    """Save the logits of every exit on validation and test under ``logits/<stage>/``: of the
    training-time view, or of test ``view`` (``data`` must then have its segments), averaged over
    its crops (:mod:`flatkd.data.views`) and stored beside the training-time view; each file
    carries its clips' keys (:func:`clip_keys`)."""
    shown = f"logits {stage} {model.modality}" + ("" if view is None else f" {view.name}")
    with logged_stage(log, shown, f"{len(data.val)} validation + {len(data.test)} test clips"):  # type: ignore[arg-type]
        for split, clips in (("val", data.val), ("test", data.test)):
            dataset: Dataset = clips if view is None else ViewDataset(clips, view.crops)  # type: ignore[arg-type]
            desc = f"{stage} {model.modality} {split}" + ("" if view is None else f" {view.name}")
            crops = None if view is None else view.crops
            logits, labels = predict(model, dataset, config, env=env, progress=progress, desc=desc, views=crops)
            if not torch.isfinite(logits).all():
                raise non_finite_network_error(
                    run, run.checkpoint_path(stage, model.modality), stage, model.modality, f"{split} logits"
                )
            if env.is_main:
                keys = clip_keys(clips)
                run.save_logits(stage, model.modality, split, logits, labels, None if view is None else view.name, keys)


def clip_keys(dataset: Dataset) -> list[str] | None:
    """The cache key of every clip of ``dataset`` in order (a :class:`ClipDataset`'s samples), or
    None for a dataset that does not name its clips."""
    if not isinstance(dataset, ClipDataset):
        return None
    return [sample.video for sample in dataset.samples]


def record_macs(run: RunDir, model: MultiExitNet, config: TrainConfig) -> list[int]:
    """Write the MACs per clip of every exit of ``model`` (backbone up to it, its head) to
    ``macs.json``; returns the MACs of the path to each exit."""
    shape = (config.num_segments, CHANNELS[model.modality], config.input_size, config.input_size)
    backbone, head = exit_costs(model, shape)
    run.update_macs(model.modality, backbone, head)
    return [b + h for b, h in zip(backbone, head, strict=True)]


def load_train_config(run: RunDir, modality: str) -> TrainConfig:
    """The settings ``modality`` was trained with in ``run``."""
    section = run.section("train", modality, needs=f"flatkd train --run {run.path} --modality {modality}")
    return from_dict(TrainConfig, section, where=f"{run.config_path}: train.{modality}")


def build_network(run: RunDir, modality: str) -> MultiExitNet:
    """A freshly initialised network of ``modality`` as ``run`` trains it (preset, exits, classes)."""
    config = load_train_config(run, modality)
    classes = run.section("data", "classes", needs=f"flatkd train --run {run.path} --modality {modality}")
    return build_model(config.preset, modality, len(classes), config.exits)


def load_network(run: RunDir, modality: str, stage: str = FINAL_TRAIN_STAGE) -> MultiExitNet:
    """The best ``stage`` network of ``modality`` in ``run``, in eval mode on the CPU."""
    model = build_network(run, modality)
    path = run.existing_checkpoint(stage, modality)
    load_weights(path, model)
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise non_finite_network_error(run, path, stage, modality, f"weights ({bad[0]})")
    return model.eval()
