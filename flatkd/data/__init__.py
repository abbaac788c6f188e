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

# name -> the module defining it, imported on first use (``import flatkd.data`` imports no torch)
_EXPORTS = {
    "CacheSettings": "flatkd.data.cache.layout",
    "ClipDataset": "flatkd.data.clip_dataset",
    "ClipPlan": "flatkd.data.clip_dataset",
    "DatasetSplits": "flatkd.data.dataset_splits",
    "ModalityCache": "flatkd.data.cache.layout",
    "Sample": "flatkd.data.splits",
    "SynthSettings": "flatkd.data.synth.build",
    "build_cache": "flatkd.data.cache.build",
    "default_cache_dir": "flatkd.data.cache.layout",
    "generate_synthetic": "flatkd.data.synth.build",
    "list_videos": "flatkd.data.dataset_splits",
    "open_dataset": "flatkd.data.dataset_splits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
