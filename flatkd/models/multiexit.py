"""The multi-exit network of one modality: input BatchNorm, ResNet backbone, internal classifiers.

Input: a clip tensor ``[B, S, C, H, W]`` with S TSN segments (Wang et al., "Temporal Segment
Networks", ECCV 2016). Every segment goes through the network as an image; the logits of each exit
are averaged over the S segments ("segment consensus", as CoViAR does: Wu et al., "Compressed
Video Action Recognition", CVPR 2018). Output: a list of logits ``[B, K]``, one per exit, ordered
from the earliest internal classifier to the backbone's final ``fc``.

Motion vectors and residuals first pass an input BatchNorm (``data_bn``, as in CoViAR's model),
since their value range differs from the RGB statistics the stem was designed for.

Freezing (:meth:`MultiExitNet.set_trainable`): the frozen part gets ``requires_grad=False`` and its
BatchNorm layers stay in eval mode even when ``model.train()`` is called, so neither its parameters
nor its running statistics change. (The paper's release leaves the frozen backbone's BatchNorm in
train mode, which silently changes its running statistics; flatkd does not copy that.)

Feature access for feature distillation: :meth:`MultiExitNet.features` gives the last stage's map in
clip layout ``[B, C, T, H, W]`` (T = S segments, :mod:`flatkd.models.layout`) and
:meth:`MultiExitNet.classify` applies the final head to such a map, so
``classify(features(x)) == forward(x)[-1]``. An optional ``final_transform`` (set with
:meth:`MultiExitNet.attach_final_transform`; e.g. generative KD's attention reweighting) maps that
feature map to one of the same shape before the final head; it belongs to the backbone when
freezing and is saved with the weights (keys ``final_transform.*``), so a network with one must be
rebuilt with the same transform before loading.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Literal

from torch import Tensor, nn

from flatkd.modalities import CHANNELS
from flatkd.models.exits import InternalClassifier
from flatkd.models.layout import clip_layout, segment_layout
from flatkd.models.resnet import ResNet

#: names of the four backbone stages, where internal classifiers may sit
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")

TrainablePart = Literal["all", "backbone", "ics"]
_FROZEN_CHILDREN: dict[str, tuple[str, ...]] = {
    "all": (),
    "backbone": ("ics",),
    "ics": ("data_bn", "backbone", "final_transform"),
}


class MultiExitNet(nn.Module):
    """Backbone + internal classifiers for one modality.

    Args:
        backbone: a :class:`ResNet` whose ``conv1`` takes ``CHANNELS[modality]`` channels.
        modality: ``"iframe"``, ``"mv"`` or ``"residual"``.
        exit_stages: 0-based backbone stages followed by an internal classifier, increasing,
            each < 3 (the exit after the last stage is the backbone's ``fc``).
        ic_widths: convolution width of each internal classifier.
    """

    def __init__(
        self,
        backbone: ResNet,
        modality: str,
        exit_stages: tuple[int, ...],
        ic_widths: tuple[int, ...],
    ):
        super().__init__()
        if modality not in CHANNELS:
            raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(CHANNELS)}")
        if list(exit_stages) != sorted(set(exit_stages)) or any(s not in (0, 1, 2) for s in exit_stages):
            raise ValueError(f"exit stages must be increasing and within 0..2, got {exit_stages}")
        self.modality = modality
        self.exit_stages = tuple(exit_stages)
        num_classes = backbone.fc.out_features
        channels = CHANNELS[modality]
        self.data_bn = nn.BatchNorm2d(channels) if modality in ("mv", "residual") else None
        self.backbone = backbone
        self.ics = nn.ModuleList(
            InternalClassifier(backbone.stage_channels[stage], width, num_classes)
            for stage, width in zip(exit_stages, ic_widths, strict=True)
        )
        self.final_transform: nn.Module | None = None
        self._frozen: tuple[str, ...] = ()

    @property
    def num_exits(self) -> int:
        """Internal classifiers plus the final ``fc``."""
        return len(self.ics) + 1

    @property
    def exit_names(self) -> tuple[str, ...]:
        """The stage each exit reads, e.g. ``("layer1", "layer2", "layer3", "fc")``."""
        return tuple(STAGE_NAMES[s] for s in self.exit_stages) + ("fc",)

    def attach_final_transform(self, transform: nn.Module) -> None:
        """Apply ``transform`` ([B, C, T, H, W] -> same shape) to the last stage's feature map
        before the final head, in :meth:`forward` and :meth:`forward_exit` (not in
        :meth:`classify`). Call :meth:`set_trainable` afterwards to (re)apply freezing."""
        self.final_transform = transform

    def set_trainable(self, part: TrainablePart) -> None:
        """Train ``"all"``, only the ``"backbone"`` (input BN + ResNet incl. ``fc`` and the final
        transform, if any; the ICs are frozen) or only the ``"ics"`` (the backbone is frozen, its
        BatchNorm kept in eval mode)."""
        self._frozen = _FROZEN_CHILDREN[part]
        for name, child in self.named_children():
            child.requires_grad_(name not in self._frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> MultiExitNet:
        super().train(mode)
        for name in self._frozen:
            child = getattr(self, name)
            if child is not None:
                child.eval()
        return self

    def forward(self, clips: Tensor) -> list[Tensor]:
        """``[B, S, C, H, W]`` -> one ``[B, K]`` logits tensor per exit (segment-averaged)."""
        _, segments = _check_clips(clips)
        logits = []
        ic_of_stage = dict(zip(self.exit_stages, self.ics, strict=True))
        for stage, features in self._walk(clips, last_stage=3):
            if stage in ic_of_stage:
                logits.append(_consensus(ic_of_stage[stage](features), segments))
        logits.append(self._final_head(features, segments))
        return logits

    def exit_stage(self, index: int) -> int:
        """The backbone stage (0-3) whose output exit ``index`` reads."""
        index = range(self.num_exits)[index]
        return self.exit_stages[index] if index < len(self.ics) else 3

    def trunk(self, clips: Tensor, last_stage: int) -> Tensor:
        """Input BatchNorm, stem and stages ``0..last_stage``: ``[B, S, C, H, W]`` -> the stage's
        feature map in segment layout ``[B*S, C', H', W']``."""
        _check_clips(clips)
        return deque(self._walk(clips, last_stage), maxlen=1)[0][1]

    def exit_head(self, index: int, features: Tensor, segments: int) -> Tensor:
        """Exit ``index``'s head on :meth:`trunk`'s output of its stage: logits ``[B, K]``
        (segment-averaged; the final exit includes the final transform, if any)."""
        index = range(self.num_exits)[index]
        if index < len(self.ics):
            return _consensus(self.ics[index](features), segments)
        return self._final_head(features, segments)

    def forward_exit(self, clips: Tensor, index: int) -> Tensor:
        """Logits ``[B, K]`` of exit ``index`` alone, computing only the path to it (the backbone
        up to that exit's stage, then its head). Used to count each exit's cost."""
        return self.exit_head(index, self.trunk(clips, self.exit_stage(index)), clips.shape[1])

    def features(self, clips: Tensor) -> Tensor:
        """The last stage's feature map of ``clips`` [B, S, C, H, W] in clip layout
        ``[B, C, S, H', W']`` (the segments as time steps)."""
        return clip_layout(self.trunk(clips, 3), clips.shape[1])

    def classify(self, features: Tensor) -> Tensor:
        """The final head (global average pool, ``fc``, segment consensus) on a feature map in
        clip layout ``[B, C, S, H, W]`` -> logits ``[B, K]``; no final transform is applied."""
        return _consensus(self.backbone.head(segment_layout(features)), features.shape[2])

    def _final_head(self, features: Tensor, segments: int) -> Tensor:
        if self.final_transform is None:
            return _consensus(self.backbone.head(features), segments)
        return self.classify(self.final_transform(clip_layout(features, segments)))

    def _walk(self, clips: Tensor, last_stage: int) -> Iterator[tuple[int, Tensor]]:
        x = clips.flatten(0, 1)
        if self.data_bn is not None:
            x = self.data_bn(x)
        x = self.backbone.stem(x)
        for stage in range(last_stage + 1):
            x = self.backbone.stage(stage, x)
            yield stage, x


def _consensus(logits: Tensor, segments: int) -> Tensor:
    """Segment consensus: per-segment logits ``[B*S, K]`` -> their mean per clip ``[B, K]``."""
    return logits.view(-1, segments, logits.shape[-1]).mean(dim=1)


def _check_clips(clips: Tensor) -> tuple[int, int]:
    if clips.dim() != 5:
        raise ValueError(f"expected clips [B, S, C, H, W], got shape {tuple(clips.shape)}")
    return clips.shape[0], clips.shape[1]
