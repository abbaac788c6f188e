"""The methods of ``flatkd distill`` and the run-directory stages they train.

=============== ============================================================ ======================
method          internal classifiers (ICs) of every network, backbone frozen  stages it writes
=============== ============================================================ ======================
``ce``          label cross-entropy (the baseline; the same stage            ``ic-ce``
                ``flatkd train`` runs, reused when its settings match)
``kd``          KD from the network's own final head                          ``ic-kd``
``pkd``         PKD along ``chain.json``, sharpest teacher first              ``ic-pkd``
``pkd-paper``   PKD along the papers' order MV -> residual -> I-frame         ``ic-pkd-paper``
                (the control of a measured chain)
``pkd-reversed`` PKD along the reversed chain (ablation)                      ``ic-pkd-reversed``
``pkd-iframe``  KD from the I-frame network's head only (ablation)            ``ic-pkd-iframe``
``genkd``       label CE, on MV/residual backbones fine-tuned by              ``genkd-teacher``,
                generative feature KD from the I-frame network                ``genkd``, ``ic-genkd``
``genkd-ce``    control of ``genkd``: label CE, on MV/residual backbones      ``genkd-ce``,
                fine-tuned with label CE on the final head alone (same        ``ic-genkd-ce``
                epochs, network optimiser, schedule and batches; no
                attention, CVAE or teacher)
``genkd-noteacher`` control of ``genkd``: label CE, on MV/residual backbones  ``genkd-noteacher``,
                fine-tuned by the same attention + CVAE epochs with the        ``ic-genkd-noteacher``
                teacher terms (GD, AD) switched off
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

The two controls tell what the teacher adds: ``genkd-noteacher`` is ``genkd`` minus its teacher
terms (what attention reweighting and the CVAE's reconstruction term do on their own),
``genkd-ce`` is the fine-tuning budget alone. All three fine-tunes draw the same batches in the
same order for a seed (they share the ``genkd`` stage's seed stream) and start from the same
``backbone`` weights; ``flatkd distill`` tabulates ``genkd`` against each with paired intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flatkd.errors import ConfigError
from flatkd.runs.stages import FINAL_TRAIN_STAGE, Stage, method_stage

if TYPE_CHECKING:  # the method table imports no torch: the CLI offers its names as choices
    from flatkd.distill.pkd import Variant

#: the network that teaches in generative KD, and the ones it teaches
GENKD_TEACHER = "iframe"
GENKD_STUDENTS = ("mv", "residual")
GENKD_TEACHER_STAGE = Stage.GENKD_TEACHER
GENKD_STAGE = Stage.GENKD
#: the stages fine-tuning the student backbones: generative KD and its two controls
GENKD_FINETUNES = (Stage.GENKD, Stage.GENKD_CE, Stage.GENKD_NOTEACHER)


@dataclass(frozen=True)
class Method:
    """One ``flatkd distill --method``: the IC loss (a PKD ``variant``) and ``finetune``, the stage
    of :data:`GENKD_FINETUNES` whose MV/residual backbones the ICs sit on (None: the ``backbone``
    weights)."""

    name: str
    variant: Variant
    finetune: Stage | None = None

    @property
    def genkd(self) -> bool:
        """Whether the student backbones are fine-tuned first (generative KD or a control of it;
        the ``genkd`` settings section applies)."""
        return self.finetune is not None

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
        return self.finetune if self.finetune is not None and modality in GENKD_STUDENTS else Stage.BACKBONE

    def teacher_stage(self, modality: str) -> str:
        """The stage of ``modality``'s network when it teaches another network's ICs."""
        return self.finetune if self.finetune is not None and modality in GENKD_STUDENTS else FINAL_TRAIN_STAGE

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
        Method("pkd-paper", "pkd-paper"),
        Method("pkd-reversed", "pkd-reversed"),
        Method("pkd-iframe", "pkd-iframe"),
        Method("genkd", "ce", Stage.GENKD),
        Method("genkd-ce", "ce", Stage.GENKD_CE),
        Method("genkd-noteacher", "ce", Stage.GENKD_NOTEACHER),
        Method("pkd+genkd", "pkd", Stage.GENKD),
    )
}


def get_method(name: str) -> Method:
    """The method called ``name``; :class:`ConfigError` listing the valid ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown distillation method '{name}' (valid: {', '.join(METHODS)})")
    return METHODS[name]
