"""An in-memory stand-in for ``flatkd.data.ClipDataset`` used by the training tests
(``test_training.py`` checks that it honours the data contract the training loop relies on).

Contract (flatkd.data): ``__getitem__(i) -> (inputs: {modality: float32 [S, C, H, W]}, label)``
with C = 3 / 2 / 3 for iframe / mv / residual, the same clip for every modality, random sampling in
training (a function of seed, epoch and index, so it does not depend on which process or worker
reads the clip) and a fixed one in evaluation, and ``set_epoch(epoch)``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

CHANNELS = {"iframe": 3, "mv": 2, "residual": 3}


class StandInClips(Dataset):
    """``n`` clips of ``num_classes`` classes: a per-class, per-modality pattern plus noise.

    The noise (the stand-in for random TSN sampling and augmentation) is drawn from a generator
    seeded with (seed, epoch, index) in training and (seed, index) in evaluation.
    """

    def __init__(
        self,
        n: int,
        num_classes: int = 4,
        segments: int = 2,
        size: int = 32,
        train: bool = True,
        seed: int = 0,
        noise: float = 1.0,
        modalities: tuple[str, ...] = ("iframe", "mv", "residual"),
    ):
        g = torch.Generator().manual_seed(1234)
        self.patterns = {
            m: torch.randn(num_classes, CHANNELS[m], size, size, generator=g) for m in modalities
        }
        self.labels = [(i * 7) % num_classes for i in range(n)]
        self.segments, self.size, self.train, self.seed, self.noise = segments, size, train, seed, noise
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        key = (self.seed, self.epoch, index) if self.train else (self.seed, -1, index)
        g = torch.Generator().manual_seed(hash(key) % 2**62)
        label = self.labels[index]
        inputs = {}
        for modality, pattern in self.patterns.items():
            clip = pattern[label].expand(self.segments, -1, -1, -1)
            inputs[modality] = clip + self.noise * torch.randn(clip.shape, generator=g)
        return inputs, label

