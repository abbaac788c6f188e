"""The methods of ``flatkd distill`` and the run-directory stages they train.

=============== ============================================================ ======================
method          internal classifiers (ICs) of every network, backbone frozen  stages it writes
=============== ============================================================ ======================
``ce``          label cross-entropy (the baseline; the same stage            ``ic-ce``
                ``flatkd train`` runs, reused when its settings match)
``kd``          KD from the network's own final head                          ``ic-kd``
``pkd``         PKD along ``chain.json``, sharpest teacher first              ``ic-pkd``
``pkd-reversed`` PKD along the reversed chain (ablation)                      ``ic-pkd-reversed``
``pkd-iframe``  KD from the I-frame network's head only (ablation)            ``ic-pkd-iframe``
``genkd``       label CE, on MV/residual backbones fine-tuned by              ``genkd-teacher``,
                generative feature KD from the I-frame network                ``genkd``, ``ic-genkd``
``pkd+genkd``   PKD along ``chain.json`` on the ``genkd`` backbones            (``genkd-teacher``,
                                                                              ``genkd``),
                                                                              ``ic-pkd+genkd``
=============== ============================================================ ======================

Generative KD (:mod:`flatkd.runs.genkd_stage`): stage ``genkd-teacher`` trains the I-frame
network's attention head and CVAE with that network frozen (``checkpoints/genkd-teacher/
iframe.safetensors`` holds them); stage ``genkd`` fine-tunes each student backbone (MV, residual)
with the two-stage generative-KD epochs (``checkpoints/genkd/<modality>.safetensors``: the whole
network, its attention reweighting before the final head included). The I-frame network teaches
and is not changed, so in ``genkd`` its ICs are its ``ic-ce`` ones; ``pkd+genkd`` trains PKD ICs
for all three networks, the teachers being the ``genkd`` networks (MV, residual) and the I-frame
``ic-ce`` network.
"""

from __future__ import annotations

from dataclasses import dataclass

from flatkd.distill.pkd import Variant
from flatkd.errors import ConfigError
from flatkd.runs.stages import FINAL_TRAIN_STAGE, Stage, method_stage

#: the network that teaches in generative KD, and the ones it teaches
GENKD_TEACHER = "iframe"
GENKD_STUDENTS = ("mv", "residual")
GENKD_TEACHER_STAGE = Stage.GENKD_TEACHER
GENKD_STAGE = Stage.GENKD


@dataclass(frozen=True)
class Method:
    """One ``flatkd distill --method``: the IC loss (a PKD ``variant``) and whether the ICs sit on
    generative-KD backbones."""

    name: str
    variant: Variant
    genkd: bool = False

    @property
    def stage(self) -> str:
        """The stage holding the method's IC checkpoints and logits."""
        return method_stage(self.name)

    @property
    def needs_chain(self) -> bool:
        """Whether the teacher order comes from ``chain.json``."""
        return self.variant in ("pkd", "pkd-reversed")

    def trains(self, modality: str) -> bool:
        """Whether the method trains ICs of ``modality``'s network (genkd leaves its teacher alone)."""
        return not (self.genkd and self.variant == "ce" and modality == GENKD_TEACHER)

    def start_stage(self, modality: str) -> str:
        """The stage whose best weights the ICs start from (the backbone they are trained on)."""
        return GENKD_STAGE if self.genkd and modality in GENKD_STUDENTS else Stage.BACKBONE

    def teacher_stage(self, modality: str) -> str:
        """The stage of ``modality``'s network when it teaches another network's ICs."""
        return GENKD_STAGE if self.genkd and modality in GENKD_STUDENTS else FINAL_TRAIN_STAGE

    def logits_stage(self, modality: str) -> str:
        """Where the method's logits of ``modality``'s exits are (its own stage, or ``ic-ce`` for
        a network it does not train)."""
        return self.stage if self.trains(modality) else FINAL_TRAIN_STAGE


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ce", "ce"),
        Method("kd", "kd"),
        Method("pkd", "pkd"),
        Method("pkd-reversed", "pkd-reversed"),
        Method("pkd-iframe", "pkd-iframe"),
        Method("genkd", "ce", genkd=True),
        Method("pkd+genkd", "pkd", genkd=True),
    )
}


def get_method(name: str) -> Method:
    """The method called ``name``; :class:`ConfigError` listing the valid ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown distillation method '{name}' (valid: {', '.join(METHODS)})")
    return METHODS[name]
