"""Datasets: the built-in synthetic compressed-action set, UCF-101/HMDB-51 split lists, the
modality cache and the torch ``Dataset`` that serves I-frames, motion vectors and residuals.

From video files to training batches::

    flatkd data synth --out DIR                    # or a UCF-101 / HMDB-51 tree
    flatkd data cache DIR                          # decode every video once -> DIR/cache

    splits = open_dataset(DIR, split=1)            # .classes, .train, .val, .test
    train = ClipDataset(splits.train, default_cache_dir(DIR), ("iframe", "mv"), train=True)
    train.set_epoch(epoch)                         # before each epoch's DataLoader pass
    inputs, label = train[0]                       # {"iframe": [3, 3, 112, 112], "mv": [3, 2, 112, 112]}

Modules: :mod:`~flatkd.data.synth` (the synthetic set and its class design),
:mod:`~flatkd.data.splits` and :mod:`~flatkd.data.validation` (split lists, validation carve),
:mod:`~flatkd.data.lists` (split lists written for class folders of videos),
:mod:`~flatkd.data.cache` (the modality cache), :mod:`~flatkd.data.sampling` and
:mod:`~flatkd.data.transforms` (TSN sampling, crops, normalisation),
:mod:`~flatkd.data.clip_dataset` (the ``Dataset``), :mod:`~flatkd.data.sanity` (a linear probe of
what each modality tells).
"""

from flatkd.data.cache import CacheSettings, ModalityCache, build_cache, default_cache_dir
from flatkd.data.clip_dataset import ClipDataset, ClipPlan
from flatkd.data.dataset_splits import DatasetSplits, list_videos, open_dataset
from flatkd.data.splits import Sample
from flatkd.data.synth import SynthSettings, generate_synthetic

__all__ = [
    "CacheSettings",
    "ClipDataset",
    "ClipPlan",
    "DatasetSplits",
    "ModalityCache",
    "Sample",
    "SynthSettings",
    "build_cache",
    "default_cache_dir",
    "generate_synthetic",
    "list_videos",
    "open_dataset",
]
