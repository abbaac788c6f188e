"""The modality cache: I-frames, motion vectors and residuals decoded once and stored compactly
(layout in :mod:`flatkd.data.cache.layout`, chunk files in :mod:`flatkd.data.cache.chunks`,
building in :mod:`flatkd.data.cache.build`, size estimates in :mod:`flatkd.data.cache.estimate`). Its names are imported from these modules on
first use."""

from flatkd.lazy import lazy_exports

# name -> the module defining it, imported on first use (``CacheSettings`` imports no torch)
_EXPORTS = {
    "CacheEstimate": "flatkd.data.cache.estimate",
    "CacheReport": "flatkd.data.cache.build",
    "CacheSettings": "flatkd.data.cache.layout",
    "ModalityCache": "flatkd.data.cache.layout",
    "VideoEntry": "flatkd.data.cache.layout",
    "build_cache": "flatkd.data.cache.build",
    "default_cache_dir": "flatkd.data.cache.layout",
    "estimate_cache": "flatkd.data.cache.estimate",
    "free_bytes": "flatkd.data.cache.estimate",
    "pending": "flatkd.data.cache.build",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
