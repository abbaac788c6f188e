"""The two layouts of a TSN feature map.

The backbone sees every segment of a clip as one image, so its feature maps come in *segment
layout* ``[B*S, C, H, W]`` (clip ``b``'s segment ``s`` is row ``b*S + s``). Methods that treat the
S segments as a time axis (attention over channels x time, generative feature KD) use *clip
layout* ``[B, C, T, H, W]`` with ``T = S``, the layout of 3-D video networks such as I3D.
"""

from __future__ import annotations

from torch import Tensor


def clip_layout(features: Tensor, segments: int | None = None) -> Tensor:
    """[B, C, T, H, W] unchanged, or segment layout [B*T, C, H, W] (``segments`` = T) ->
    [B, C, T, H, W]."""
    if features.dim() == 5:
        return features
    if features.dim() != 4 or segments is None or features.shape[0] % segments:
        raise ValueError(f"expected [B, C, T, H, W] or [B*T, C, H, W] with T segments, got {tuple(features.shape)}")
    n, c, h, w = features.shape
    return features.reshape(n // segments, segments, c, h, w).transpose(1, 2)


def segment_layout(features: Tensor) -> Tensor:
    """[B, C, T, H, W] -> segment layout [B*T, C, H, W] (inverse of :func:`clip_layout`)."""
    b, c, t, h, w = features.shape
    return features.transpose(1, 2).reshape(b * t, c, h, w)
