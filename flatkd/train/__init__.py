"""The training loop and everything around it: settings, optimiser and schedule, losses and
hooks, training steps, seeding, DDP, checkpoints, evaluation.

Plugging in a new loss (e.g. distillation): implement :class:`Loss` (``(exit_logits, batch) ->
scalar``), add a :class:`BatchHook` such as :class:`TeacherLogits` when it needs teacher outputs
on other modalities of the same clips, make the network's ICs trainable
(``model.set_trainable("ics")``) and call :func:`fit` with a :class:`LossStep` and a new stage
name. A step with several passes per epoch or several optimisers implements :class:`Step`.
Which files a stage writes is the caller's (:class:`StageFiles`; the run layer's
``RunDir.stage_files``).
"""

from flatkd.train.checkpoint import StageFiles, load_weights, save_weights
from flatkd.train.config import OptimConfig, ScheduleConfig, StageConfig, TrainConfig
from flatkd.train.distributed import Dist, init_from_env
from flatkd.train.evaluation import exit_accuracy, exit_cross_entropy, predict
from flatkd.train.loop import FitSpec, StageResult, fit, fit_loss, stage_settings
from flatkd.train.losses import Batch, BatchHook, ExitCrossEntropy, Loss, TeacherLogits
from flatkd.train.steps import LossStep, Optimised, Phase, Step, StepOutput

__all__ = [
    "Batch",
    "BatchHook",
    "Dist",
    "ExitCrossEntropy",
    "FitSpec",
    "Loss",
    "LossStep",
    "OptimConfig",
    "Optimised",
    "Phase",
    "ScheduleConfig",
    "StageConfig",
    "StageFiles",
    "StageResult",
    "Step",
    "StepOutput",
    "TeacherLogits",
    "TrainConfig",
    "exit_accuracy",
    "exit_cross_entropy",
    "fit",
    "fit_loss",
    "init_from_env",
    "load_weights",
    "predict",
    "save_weights",
    "stage_settings",
]
