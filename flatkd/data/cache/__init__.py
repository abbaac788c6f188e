"""The modality cache: I-frames, motion vectors and residuals decoded once and stored compactly
(layout in :mod:`flatkd.data.cache.layout`, chunk files in :mod:`flatkd.data.cache.chunks`,
building in :mod:`flatkd.data.cache.build`, size estimates in :mod:`flatkd.data.cache.estimate`).
Its names are imported from these modules on first use."""

from flatkd.lazy import lazy_exports

# the names by the submodule defining each, imported on first use:
# ``CacheSettings`` imports no torch
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "build": ("CacheReport", "build_cache", "pending"),
        "estimate": ("CacheEstimate", "estimate_cache", "free_bytes"),
        "layout": ("CacheSettings", "ModalityCache", "VideoEntry", "default_cache_dir"),
    },
)
