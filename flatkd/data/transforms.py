"""Crops, flips and CoViAR's normalisation for the modalities of one clip.

Augmentation follows CoViAR (Wu et al., CVPR 2018; ``transforms.py``, after TSN's
``GroupMultiScaleCrop``): in training a crop whose height and width are each one of
``scales x min(H, W)`` (the two scales at most ``max_distort`` steps apart) is taken at a random
place, resized to ``size x size`` and flipped horizontally with probability 1/2; in evaluation the
centred square of side ``0.875 min(H, W)`` (CoViAR resizes to ``size * 256 / 224`` and crops
``size``) is resized. One crop and one flip serve every segment and modality of a clip. Two
departures from the release: its scale list ``[1, 875, .75, .66]`` has a typo for ``.875``; and
motion vectors, which are displacements in pixels, are scaled with the resize (``dx`` by
``size / crop width``, ``dy`` by ``size / crop height``) where the release leaves them as they
are. A flip negates ``dx``.

Normalisation (CoViAR ``dataset.py``; DESIGN.md §3), with ImageNet mean ``m`` and std ``s``:

* I-frame RGB ``x``: ``(x / 255 - m) / s``;
* motion ``v`` (pixels): ``clip(v * 127.5 / 20 + 128, 0, 255) / 255 - 0.5`` (saturates at +-20 px);
* residual ``r``: ``(clip(r + 128, 0, 255) / 255 - 0.5) / s``.

Each is ``clamp(a x + b, low, high)`` per channel (:func:`normalisation`), applied to the stored
values before resizing, as CoViAR does (it normalises to uint8 images, then resizes); motion
scaling and the sign change of a flip fold into ``a``. CoViAR also rounds motion to whole pixels
before scaling; here it is not rounded.

Test views (CoViAR ``test.py``: ``--test-crops 1`` or ``10``, after TSN's ``GroupOverSample``):
one view is the evaluation centre crop; ten are the centre and the four corner crops, each also
flipped. CoViAR first stretches every frame to a ``size * 256 / 224`` square, then cuts ``size``
squares at offsets ``0``, ``2 step``, ``4 step`` with ``step = (256 - 224) // 4``; here the crops
are the squares of side ``0.875 min(H, W)`` that training and the centre view use (no stretch,
so a 340x256 frame keeps its aspect ratio, as in CoViAR's training crops), placed flush with
the frame's corners and centred like :func:`centre_crop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from flatkd.data.choices import EVAL_CROPS
from flatkd.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CoViAR's crop scales for I-frames (MV and residual networks used the first three).
DEFAULT_SCALES = (1.0, 0.875, 0.75, 0.66)
EVAL_CROP_FRACTION = 224 / 256
MV_SATURATION = 20.0


@dataclass(frozen=True)
class CropBox:
    """A crop of a frame, in pixels."""

    top: int
    left: int
    height: int
    width: int


def check_crop_scales(scales: Sequence[float], max_distort: int) -> tuple[float, ...]:
    """``scales`` as a tuple, or :class:`ConfigError` unless they are in (0, 1] and
    ``max_distort >= 0``."""
    if not scales or any(not 0.0 < s <= 1.0 for s in scales) or max_distort < 0:
        raise ConfigError(
            f"crop scales must lie in (0, 1] and max_distort be >= 0, got {tuple(scales)}, {max_distort}"
        )
    return tuple(scales)


def multiscale_crop(
    rng: np.random.Generator,
    height: int,
    width: int,
    scales: Sequence[float] = DEFAULT_SCALES,
    max_distort: int = 1,
) -> CropBox:
    """A random crop as in TSN/CoViAR's ``GroupMultiScaleCrop`` (module docstring); ``scales``
    as :func:`check_crop_scales` accepts."""
    base = min(height, width)
    sides = [max(1, int(base * s)) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return CropBox(top, left, crop_h, crop_w)


def centre_crop(height: int, width: int, fraction: float = EVAL_CROP_FRACTION) -> CropBox:
    """The centred square of side ``fraction * min(height, width)``."""
    side = max(1, int(min(height, width) * fraction))
    return CropBox((height - side) // 2, (width - side) // 2, side, side)


def evaluation_crops(height: int, width: int, crops: int) -> tuple[tuple[CropBox, bool], ...]:
    """The ``(box, flipped)`` test views of a ``height x width`` frame (module docstring): the centre
    crop alone (``crops=1``), or the centre and the four corners, each unflipped and flipped
    (``crops=10``, CoViAR's oversampling)."""
    if crops not in EVAL_CROPS:
        raise ConfigError(f"test crops must be one of {', '.join(map(str, EVAL_CROPS))} (CoViAR's), got {crops}")
    centre = centre_crop(height, width)
    if crops == 1:
        return ((centre, False),)
    side = centre.height
    corners = [CropBox(top, left, side, side) for top in (0, height - side) for left in (0, width - side)]
    return tuple((box, flip) for box in (*corners, centre) for flip in (False, True))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[N, C, h, w]`` float -> ``[N, C, size, size]``, bilinear; antialiased when shrinking more
    than 2x (below that, bilinear weights already reach every source pixel, as in CoViAR's
    ``cv2.resize``)."""
    if x.shape[-2:] == (size, size):
        return x
    antialias = max(x.shape[-2:]) > 2 * size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


def normalisation(modality: str, motion_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """``[4, C]`` float32 rows ``a, b, low, high``: the normalised value of a stored value ``x``
    in channel ``c`` is ``clamp(a[c] x + b[c], low[c], high[c])`` (module docstring).

    ``motion_scale`` multiplies ``(dx, dy)`` first (resize factors; a negative ``dx`` factor
    flips). Stored residuals are int8, so ``r + 128`` never leaves [0, 255].
    """
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    unbounded = np.full(3, np.inf)
    if modality == "iframe":
        rows = [1.0 / (255.0 * std), -mean / std, -unbounded, unbounded]
    elif modality == "mv":
        a = np.array(motion_scale) * 127.5 / MV_SATURATION / 255.0
        rows = [a, np.full(2, 128.0 / 255.0 - 0.5), np.full(2, -0.5), np.full(2, 0.5)]
    elif modality == "residual":
        rows = [1.0 / (255.0 * std), (128.0 / 255.0 - 0.5) / std, -unbounded, unbounded]
    else:
        raise ConfigError(f"unknown modality {modality!r}: use iframe, mv or residual")
    return np.stack(rows).astype(np.float32)
