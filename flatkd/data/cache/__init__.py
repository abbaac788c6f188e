"""The modality cache: I-frames, motion vectors and residuals decoded once and stored compactly
(layout in :mod:`flatkd.data.cache.layout`, chunk files in :mod:`flatkd.data.cache.chunks`,
building in :mod:`flatkd.data.cache.build`, size estimates in :mod:`flatkd.data.cache.estimate`)."""

from flatkd.data.cache.build import CacheReport, build_cache, pending
from flatkd.data.cache.estimate import CacheEstimate, estimate_cache, free_bytes
from flatkd.data.cache.layout import (
    CacheSettings,
    ModalityCache,
    VideoEntry,
    default_cache_dir,
)

__all__ = [
    "CacheEstimate",
    "CacheReport",
    "CacheSettings",
    "ModalityCache",
    "VideoEntry",
    "build_cache",
    "default_cache_dir",
    "estimate_cache",
    "free_bytes",
    "pending",
]
