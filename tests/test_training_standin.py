"""An in-memory stand-in for ``flatkd.data.ClipDataset`` used by the training tests, and a test
that it honours the data contract the training loop relies on.

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


def test_standin_follows_the_data_contract() -> None:
    train = StandInClips(6, train=True)
    inputs, label = train[3]
    assert {m: tuple(x.shape) for m, x in inputs.items()} == {
        "iframe": (2, 3, 32, 32),
        "mv": (2, 2, 32, 32),
        "residual": (2, 3, 32, 32),
    }
    assert all(x.dtype == torch.float32 for x in inputs.values()) and label == (3 * 7) % 4
    again, _ = train[3]
    assert torch.equal(again["mv"], inputs["mv"])
    train.set_epoch(1)
    assert not torch.equal(train[3][0]["mv"], inputs["mv"])
    evaluation = StandInClips(6, train=False)
    first = evaluation[2][0]["iframe"]
    evaluation.set_epoch(5)
    assert torch.equal(evaluation[2][0]["iframe"], first)
