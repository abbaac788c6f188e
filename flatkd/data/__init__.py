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

The names below are imported from their modules on first use, so that importing the package (or a
light module in it, such as :mod:`~flatkd.data.splits`) does not import torch.
"""

from flatkd.lazy import lazy_exports

# the names by the submodule defining each, imported on first use:
# ``import flatkd.data`` imports no torch
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "cache.build": ("build_cache",),
        "cache.layout": ("CacheSettings", "ModalityCache", "default_cache_dir"),
        "clip_dataset": ("ClipDataset", "ClipPlan"),
        "dataset_splits": ("DatasetSplits", "list_videos", "open_dataset"),
        "splits": ("Sample",),
        "synth.build": ("SynthSettings", "generate_synthetic"),
    },
)
