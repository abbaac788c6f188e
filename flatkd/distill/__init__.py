"""Distillation methods: the KD loss, the PKD teacher schedule and loss, WISE (scaled ensemble of
early exits with a cost/accuracy trade-off) and generative feature KD.

Method cores:

- :mod:`flatkd.distill.kd`: Hinton KD loss (temperature, label weight, optional T^2);
- :mod:`flatkd.distill.pkd`: PKD schedule, its variants and the IC loss;
- :mod:`flatkd.distill.wise`: WISE weights, early-exit cascade, MACs accounting, ``wise.json``;
- :mod:`flatkd.distill.genkd`: attention head, conditional VAE, adapters, their losses;
- :mod:`flatkd.distill.genkd_train`: the two-stage generative-KD epoch, a training step.

Their use on the networks of a run directory (``flatkd distill``, ``flatkd wise``) is the run
layer's: :mod:`flatkd.runs`.
"""

from flatkd.distill.genkd import GenKDBranch, GenKDConfig, GenKDStudent
from flatkd.distill.genkd_train import FeatureNetwork, GenKDStep
from flatkd.distill.kd import KDLoss
from flatkd.distill.pkd import PKDConfig, PKDLoss, PKDSchedule, Teacher, build_schedule
from flatkd.distill.wise import WiseConfig, WiseResult, load_wise, run_wise, save_wise

__all__ = [
    "FeatureNetwork",
    "GenKDBranch",
    "GenKDConfig",
    "GenKDStep",
    "GenKDStudent",
    "KDLoss",
    "PKDConfig",
    "PKDLoss",
    "PKDSchedule",
    "Teacher",
    "WiseConfig",
    "WiseResult",
    "build_schedule",
    "load_wise",
    "run_wise",
    "save_wise",
]
