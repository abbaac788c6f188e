"""The training loop and everything around it: settings, optimiser and schedule, losses and
hooks, seeding, DDP, checkpoints, evaluation, and the ``flatkd train`` stages.

Plugging in a new loss (e.g. distillation): implement :class:`Loss` (``(exit_logits, batch) ->
scalar``), add a :class:`BatchHook` such as :class:`TeacherLogits` when it needs teacher outputs
on other modalities of the same clips, make the network's ICs trainable
(``model.set_trainable("ics")``) and call :func:`fit` with a new stage name.
"""

from flatkd.train.checkpoint import load_weights, save_weights
from flatkd.train.config import OptimConfig, ScheduleConfig, StageConfig, TrainConfig
from flatkd.train.distributed import Dist, init_from_env
from flatkd.train.evaluation import exit_accuracy, exit_cross_entropy, predict
from flatkd.train.loop import StageResult, fit
from flatkd.train.losses import Batch, BatchHook, ExitCrossEntropy, Loss, TeacherLogits
from flatkd.train.stages import (
    FINAL_TRAIN_STAGE,
    SplitData,
    export_logits,
    load_network,
    load_train_config,
    record_macs,
    train_network,
)

__all__ = [
    "FINAL_TRAIN_STAGE",
    "Batch",
    "BatchHook",
    "Dist",
    "ExitCrossEntropy",
    "Loss",
    "OptimConfig",
    "ScheduleConfig",
    "SplitData",
    "StageConfig",
    "StageResult",
    "TeacherLogits",
    "TrainConfig",
    "exit_accuracy",
    "exit_cross_entropy",
    "export_logits",
    "fit",
    "init_from_env",
    "load_network",
    "load_train_config",
    "load_weights",
    "predict",
    "record_macs",
    "save_weights",
    "train_network",
]
