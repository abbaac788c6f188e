"""Distillation methods: the KD loss, the PKD teacher schedule and loss, WISE (scaled ensemble of
early exits with a cost/accuracy trade-off) and generative feature KD, and their use on the
networks of a run directory (``flatkd distill``, ``flatkd wise``).

Method cores:

- :mod:`flatkd.distill.kd`: Hinton KD loss (temperature, label weight, optional T^2);
- :mod:`flatkd.distill.chain`: ``chain.json`` (teacher order, sharpest -> flattest);
- :mod:`flatkd.distill.pkd`: PKD schedule, its variants and the IC loss;
- :mod:`flatkd.distill.wise`: WISE weights, early-exit cascade, MACs accounting, ``wise.json``;
- :mod:`flatkd.distill.genkd`: attention head, conditional VAE, adapters, their losses;
- :mod:`flatkd.distill.genkd_train`: the two-stage generative-KD epoch.

On a run directory (import them from their modules; the package imports only the cores, so that
importing a core does not load the training stack, the figures and the report):

- :mod:`flatkd.distill.methods`: the ``--method`` choices and the stages they write;
- :mod:`flatkd.distill.settings`: ``distill.<method>.<modality>`` settings;
- :mod:`flatkd.distill.networks`: loading trained networks, generative-KD ones included;
- :mod:`flatkd.distill.ic_training`: one network's ICs under a method, backbone frozen;
- :mod:`flatkd.distill.genkd_stage`: generative KD of the MV/residual backbones from the I-frame one;
- :mod:`flatkd.distill.pipeline`: ``flatkd distill``;
- :mod:`flatkd.distill.wise_run`: ``flatkd wise``;
- :mod:`flatkd.distill.report`: ``distill.csv`` and ``distill.md``.
"""

from flatkd.distill.chain import MODALITIES, Chain, read_chain, write_chain
from flatkd.distill.genkd import GenKDBranch, GenKDConfig, GenKDStudent
from flatkd.distill.genkd_train import FeatureNetwork, genkd_epoch
from flatkd.distill.kd import KDLoss
from flatkd.distill.pkd import PKDConfig, PKDLoss, PKDSchedule, Teacher, build_schedule
from flatkd.distill.wise import WiseConfig, WiseResult, load_wise, run_wise, save_wise

__all__ = [
    "MODALITIES",
    "Chain",
    "FeatureNetwork",
    "GenKDBranch",
    "GenKDConfig",
    "GenKDStudent",
    "KDLoss",
    "PKDConfig",
    "PKDLoss",
    "PKDSchedule",
    "Teacher",
    "WiseConfig",
    "WiseResult",
    "build_schedule",
    "genkd_epoch",
    "load_wise",
    "read_chain",
    "run_wise",
    "save_wise",
    "write_chain",
]
