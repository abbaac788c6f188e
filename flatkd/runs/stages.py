"""The stage names of a run directory, defined once.

A *stage* is one training step of one modality's network; it names the folders its files live in
(``checkpoints/<stage>/``, ``logits/<stage>/``) and its rows in ``metrics.csv``:

==================  ==========================================================================
``backbone``        the backbone and final exit with label cross-entropy (``flatkd train``)
``ic-ce``           the internal classifiers with CE, backbone frozen (``flatkd train``)
``ic-<method>``     the ICs trained by ``flatkd distill --method <method>`` (e.g. ``ic-pkd``)
``genkd-teacher``   the I-frame attention module that teaches generative KD
``genkd``           the MV and residual backbones fine-tuned by generative KD
``genkd-ce``        its control: the same backbones fine-tuned with label CE alone
``genkd-noteacher`` its control: the attention + CVAE fine-tune without the teacher terms
==================  ==========================================================================
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """The fixed stage names (a ``StrEnum``: each member *is* its folder name)."""

    BACKBONE = "backbone"
    IC_CE = "ic-ce"
    GENKD_TEACHER = "genkd-teacher"
    GENKD = "genkd"
    GENKD_CE = "genkd-ce"
    GENKD_NOTEACHER = "genkd-noteacher"


#: the stages ``flatkd train`` runs, in order
TRAIN_STAGES: tuple[Stage, ...] = (Stage.BACKBONE, Stage.IC_CE)
#: the stage whose weights are a modality's trained network (its ICs trained with CE)
FINAL_TRAIN_STAGE = Stage.IC_CE


def method_stage(method: str) -> str:
    """The stage of ``flatkd distill --method <method>``'s ICs (``ce`` is ``ic-ce`` itself).

    >>> method_stage("pkd"), method_stage("ce") == FINAL_TRAIN_STAGE
    ('ic-pkd', True)
    """
    return f"ic-{method}"
