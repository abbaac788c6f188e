"""Converting decoded modalities to their stored form: storage size and compact dtypes.

Values are clipped to the stored dtype (I-frames uint8, motion vectors and residuals int8; see
:mod:`flatkd.data.cache.layout` for why int8 loses nothing the networks see), then frames are
resized with antialiased bilinear interpolation (``torch.nn.functional.interpolate``,
``antialias=True``, a triangle filter as wide as the shrink factor, like PIL's), which averages
over the source pixels a stored pixel covers. A motion vector is a displacement in pixels, so
shrinking the image by ``sy x sx`` also scales its ``(dx, dy)`` by ``(sx, sy)``. :func:`store_gop`
applies them to one decoded GOP (what a build and a size estimate store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from flatkd.codec.reader import Gop
    from flatkd.data.cache.layout import CacheSettings


def storage_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(height, width) with the shorter side ``size`` (aspect kept); unchanged when ``size`` is
    ``None`` or not smaller than the shorter side."""
    short = min(height, width)
    if size is None or short <= size:
        return height, width
    return max(1, round(height * size / short)), max(1, round(width * size / short))


def _convert(
    frames: np.ndarray, out_hw: tuple[int, int], dtype: torch.dtype, scale: tuple[float, ...] | None = None
) -> np.ndarray:
    """``[..., H, W, C]`` integers -> ``[..., h, w, C]`` of ``dtype`` (uint8 or int8): clipped to
    the dtype's range, resized, multiplied channel-wise by ``scale``, rounded.

    The resize runs on uint8 (values shifted by 128 for int8), torch's fast antialiased path,
    which rounds to whole values; a scaled result is rounded once more.
    """
    info = torch.iinfo(dtype)
    x = torch.from_numpy(np.ascontiguousarray(frames)).clamp(info.min, info.max)
    height, width, channels = x.shape[-3:]
    if (height, width) == out_hw and scale is None:
        return x.to(dtype).numpy()
    lead = x.shape[:-3]
    shifted = (x.reshape(-1, height, width, channels) - info.min).to(torch.uint8).permute(0, 3, 1, 2)
    if (height, width) != out_hw:
        shifted = F.interpolate(shifted, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    y = shifted.permute(0, 2, 3, 1).to(torch.int16) + info.min
    if scale is not None:
        y = (y * torch.tensor(scale, dtype=torch.float32)).round_().clamp_(info.min, info.max)
    return y.to(dtype).reshape(*lead, *out_hw, channels).numpy()


def store_iframe(rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """RGB ``[..., H, W, 3]`` uint8 -> ``[..., h, w, 3]`` uint8."""
    return _convert(rgb, out_hw, torch.uint8)


def store_mv(mv: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Motion ``[..., H, W, 2]`` (dx, dy) in source pixels -> ``[..., h, w, 2]`` int8 in storage
    pixels."""
    height, width = mv.shape[-3:-1]
    if (height, width) == out_hw:
        return _convert(mv, out_hw, torch.int8)
    return _convert(mv, out_hw, torch.int8, scale=(out_hw[1] / width, out_hw[0] / height))


def store_residual(residual: np.ndarray, out_hw: tuple[int, int], step: int = 1) -> np.ndarray:
    """Residual ``[..., H, W, 3]`` -> ``[..., h, w, 3]`` int8; with ``step`` > 1 (lossy) rounded to
    the nearest multiple of ``step`` (clipped to int8, so off by at most ``step // 2``)."""
    stored = _convert(residual, out_hw, torch.int8)
    if step == 1:
        return stored
    rounded = np.round(stored.astype(np.float32) / step) * step
    return np.clip(rounded, -128, 127).astype(np.int8)


def store_gop(gop: Gop, out_hw: tuple[int, int], settings: CacheSettings) -> dict[str, np.ndarray]:
    """What the cache stores of ``gop``, for each of ``settings.modalities``: its I-frame
    ``[1, h, w, 3]``, and the motion ``[n - 1, h, w, 2]`` and residual ``[n - 1, h, w, 3]`` of its
    P-frames."""
    convert = {
        "iframe": lambda: store_iframe(gop.iframe[None], out_hw),
        "mv": lambda: store_mv(gop.mv[1:], out_hw),
        "residual": lambda: store_residual(gop.residual[1:], out_hw, settings.residual_step),
    }
    return {m: convert[m]() for m in settings.modalities}
