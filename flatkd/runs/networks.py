"""Trained networks of a run, including those of the generative-KD stages.

A network fine-tuned by generative KD carries its attention reweighting before the final head
(weights ``final_transform.head.*``, :class:`flatkd.distill.genkd.AttentionReweight`).
:func:`load_stage_network` sees that in the checkpoint and rebuilds the network with it;
other checkpoints load exactly as :func:`flatkd.train.load_network` loads them.
"""

from __future__ import annotations

from flatkd.distill.genkd import AttentionHead, AttentionReweight
from flatkd.fileio import load_tensors
from flatkd.models import MultiExitNet
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import build_network
from flatkd.train.checkpoint import apply_weights

_TRANSFORM_PREFIX = "final_transform."


def attach_attention(model: MultiExitNet, head: AttentionHead | None = None) -> AttentionHead:
    """Put attention reweighting with ``head`` (default: a fresh one) before ``model``'s final
    head; returns the head."""
    head = head if head is not None else AttentionHead(model.backbone.stage_channels[-1])
    model.attach_final_transform(AttentionReweight(head))
    return head


def load_stage_network(run: RunDir, modality: str, stage: str) -> MultiExitNet:
    """The best ``stage`` network of ``modality`` in ``run``, in eval mode on the CPU (errors
    naming the command to run when the checkpoint is missing)."""
    path = run.existing_checkpoint(stage, modality)
    model = build_network(run, modality)
    tensors = load_tensors(path)
    if any(name.startswith(_TRANSFORM_PREFIX) for name in tensors):
        attach_attention(model)
    apply_weights(model, tensors, path)
    return model.eval()
