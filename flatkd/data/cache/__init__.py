"""The modality cache: I-frames, motion vectors and residuals decoded once and stored compactly
(layout in :mod:`flatkd.data.cache.layout`, building in :mod:`flatkd.data.cache.build`)."""

from flatkd.data.cache.build import CacheReport, build_cache
from flatkd.data.cache.layout import (
    CacheSettings,
    ModalityCache,
    VideoEntry,
    default_cache_dir,
)

__all__ = [
    "CacheReport",
    "CacheSettings",
    "ModalityCache",
    "VideoEntry",
    "build_cache",
    "default_cache_dir",
]
