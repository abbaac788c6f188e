"""The papers' test protocol: several views of every clip, whose logits are averaged.

CoViAR (Wu et al., CVPR 2018, ``test.py``) and the PKD paper report accuracy over 25 segments
(TSN's evaluation positions, :func:`flatkd.data.sampling.segment_positions` without a generator)
times 10 crops (centre and corners, each also flipped: :func:`flatkd.data.transforms.evaluation_crops`),
or times 1 centre crop, with the network's scores averaged over all of them. A :class:`EvalView`
names one such protocol (``25x10``); :class:`ViewDataset` serves every view of a clip at once so
the evaluation can average them (:func:`flatkd.train.evaluation.predict`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from flatkd.data.clip_dataset import ClipDataset, ClipPlan
from flatkd.data.sampling import segment_positions
from flatkd.data.transforms import CropBox, evaluation_crops
from flatkd.errors import ConfigError


@dataclass(frozen=True)
class EvalView:
    """``segments`` TSN segments times ``crops`` crops (1 or 10) per clip."""

    segments: int
    crops: int

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise ConfigError(f"test segments must be >= 1, got {self.segments}")
        evaluation_crops(8, 8, self.crops)  # validates crops

    @property
    def name(self) -> str:
        """``25x10``: how the view is named in file names and reports."""
        return f"{self.segments}x{self.crops}"

    @classmethod
    def parse(cls, name: str) -> EvalView:
        """The inverse of :attr:`name`."""
        segments, sep, crops = name.partition("x")
        if not sep or not segments.isdigit() or not crops.isdigit():
            raise ConfigError(f"a test view is SEGMENTSxCROPS, e.g. 25x10, got {name!r}")
        return cls(int(segments), int(crops))


class ViewDataset(Dataset[tuple[dict[str, torch.Tensor], int]]):
    """Every test view of each clip of ``clips``: item ``i`` is ``(inputs, label)`` with
    ``inputs[m]`` of shape ``[V, S, C, H, W]`` (V crops, S = ``clips.num_segments`` segments).

    ``clips`` must be an evaluation dataset (``train=False``); its segments are the view's. The
    stored frames of a clip are read once and every crop is cut from them.
    """

    def __init__(self, clips: ClipDataset, crops: int) -> None:
        if clips.train:
            raise ConfigError("test views are cut from an evaluation dataset (train=False)")
        self.clips = clips
        self.view = EvalView(clips.num_segments, crops)

    def __len__(self) -> int:
        return len(self.clips)

    def plans(self, index: int) -> list[ClipPlan]:
        """The plan of every view of clip ``index``: same frames, each view's crop and flip."""
        entry = self.clips.cache.entry(self.clips.samples[index].video)
        p_rows = segment_positions(len(entry.p_frames), self.clips.num_segments, None)
        height, width = entry.size
        return [
            ClipPlan(p_rows=p_rows, gop_rows=entry.gop_of_p[p_rows], box=box, flip=flip)
            for box, flip in evaluation_crops(height, width, self.view.crops)
        ]

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        plans = self.plans(index)
        first = plans[0]
        height, width = self.clips.cache.entry(self.clips.samples[index].video).size
        whole = ClipPlan(first.p_rows, first.gop_rows, CropBox(0, 0, height, width), False)
        frames = self.clips.read_windows(index, whole)
        views = []
        for plan in plans:
            box = plan.box
            windows = {m: f[:, box.top : box.top + box.height, box.left : box.left + box.width] for m, f in frames.items()}
            views.append(self.clips.transform(windows, plan))
        inputs = {m: torch.stack([v[m] for v in views]) for m in self.clips.modalities}
        return inputs, self.clips.samples[index].label
