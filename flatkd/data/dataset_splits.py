"""The one entry point training code calls for a dataset's samples: :func:`open_dataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flatkd.data.splits import Layout, Sample, listed_splits, read_split
from flatkd.data.validation import carve_validation

DEFAULT_VAL_FRACTION = 0.15


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's classes and its training, validation and test samples for one split.

    ``val`` is carved from the training list (:func:`flatkd.data.validation.carve_validation`);
    ``test`` is the split's test list, for final reporting only.
    """

    root: Path
    layout: Layout
    split: int
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def open_dataset(
    data_dir: str | os.PathLike[str],
    split: int = 1,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    layout: Layout | Literal["auto"] = "auto",
    splits_dir: str | os.PathLike[str] | None = None,
    videos_dir: str | os.PathLike[str] | None = None,
) -> DatasetSplits:
    """Read split ``split`` (1-3) of the UCF-101-style or HMDB-51-style dataset in ``data_dir``
    (layout and folders detected unless given, see :func:`flatkd.data.splits.read_split`) and
    carve a validation set of about ``val_fraction`` of each class's training clips, whole groups
    at a time, chosen by ``seed``.

    Example::

        splits = open_dataset("data/synth", split=1)
        splits.classes[splits.train[0].label], len(splits.val), len(splits.test)
    """
    listed = read_split(data_dir, split, layout=layout, splits_dir=splits_dir, videos_dir=videos_dir)
    train, val = carve_validation(listed.train, val_fraction, seed)
    return DatasetSplits(
        root=Path(data_dir),
        layout=listed.layout,
        split=split,
        classes=listed.classes,
        train=train,
        val=val,
        test=listed.test,
    )


def list_videos(
    data_dir: str | os.PathLike[str],
    splits: tuple[int, ...] | None = None,
    *,
    layout: Layout | Literal["auto"] = "auto",
    splits_dir: str | os.PathLike[str] | None = None,
    videos_dir: str | os.PathLike[str] | None = None,
) -> list[Sample]:
    """Every video listed for training or testing in any of ``splits`` (default: every split the
    dataset has lists for, :func:`~flatkd.data.splits.listed_splits`), each once (what
    ``flatkd data cache`` decodes)."""
    if splits is None:
        splits = listed_splits(data_dir, layout=layout, splits_dir=splits_dir)
    videos: dict[str, Sample] = {}
    for split in splits:
        listed = read_split(data_dir, split, layout=layout, splits_dir=splits_dir, videos_dir=videos_dir)
        for sample in (*listed.train, *listed.test):
            videos.setdefault(sample.video, sample)
    return list(videos.values())
