"""CoViAR's motion-vector and residual representations, GOP by GOP.

Definitions (Wu et al., "Compressed Video Action Recognition", CVPR 2018, §3.1, and the released
loader ``coviar_data_loader.c``). For a P-frame ``t`` let ``s_t(p)`` be the pixel that pixel ``p``
copies from in frame ``t - 1`` (:mod:`flatkd.codec.blocks`). Then

* not accumulated: ``mv_t(p) = p - s_t(p)`` and ``residual_t(p) = F_t(p) - F_{t-1}(s_t(p))``;
* accumulated: the trace back to the GOP's I-frame ``S_t = S_{t-1} o s_t`` (``S_0 = id``), i.e.
  ``S_t(p) = S_{t-1}(s_t(p))``, and ``mv_t(p) = p - S_t(p)``,
  ``residual_t(p) = F_t(p) - F_0(S_t(p))``;

with ``F`` the decoded RGB frames, motion as ``(x, y)`` in whole pixels with CoViAR's sign
(destination minus source), and the I-frame itself at zero motion and zero residual. This is the
same arithmetic as the C loop (its ``accu_src[p] = accu_src_old[src(p)]`` is the composition
above), evaluated with linear-index gathers (``np.take``) over whole frames: the reference's RGB
pixels are gathered as 32-bit words, maps and trace are int64 (``np.intp``: ``np.take`` would convert
any other index type first). Packed RGB (3 bytes a pixel) and 32-bit words are turned into each
other by copying 4-byte words that start every 3 bytes: overlapping reads are harmless, and
overlapping writes (in increasing order) leave each pixel's 4th byte to be overwritten by the next
pixel's first; both buffers keep one spare byte at the end.

One deliberate difference: CoViAR returns all-zero arrays for a P-frame that carries no
motion-vector side data at all (every block intra or skipped); here such a frame has zero motion
and its residual is computed as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from flatkd.codec.blocks import BlockRaster, padded_shape

#: Most P-frames whose per-block work is done at once.
_BATCH = 16


def _pixel_words(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(height, width)`` uint32 words over ``packed``, a uint8 buffer of packed RGB pixels with
    one spare byte at the end: word ``(y, x)`` is the 4 bytes from byte ``3 (y * width + x)`` on,
    so its low 3 bytes (little-endian) are that pixel's ``R, G, B``."""
    if packed.nbytes < 3 * height * width + 1:
        raise ValueError("the packed RGB buffer needs a spare byte at its end")
    word = packed[:4].view(np.uint32)
    return as_strided(word, shape=(height, width), strides=(3 * width, 3))


class PFrame(NamedTuple):
    """One P-frame handed to :meth:`GopCompensator.steps`.

    Attributes:
        vectors: ``MotionVectors.to_ndarray()`` of the frame, or ``None`` if it exported none.
        rgb: the decoded frame, ``(H, W, 3)`` uint8, or ``None`` when neither its residual nor
            (not accumulating) the next frame's residual is wanted.
        mv_out: where to write its motion, ``(H, W, 2)`` int16 (last axis contiguous), or ``None``.
        residual_out: where to write its residual, ``(H, W, 3)`` int16, or ``None``.
    """

    vectors: np.ndarray | None
    rgb: np.ndarray | None = None
    mv_out: np.ndarray | None = None
    residual_out: np.ndarray | None = None

    @property
    def wanted(self) -> bool:
        return self.mv_out is not None or self.residual_out is not None


class GopCompensator:
    """Motion vectors and residuals of frames of ``height x width`` pixels.

    Call :meth:`start` with each I-frame, then :meth:`steps` with the following P-frames of its
    GOP in decoding order, in batches of at most :attr:`capacity` frames (the per-block work is
    done for a whole batch at once; the trace advances frame by frame).

    The trace holds one int64 word per pixel: the linear index of its source pixel in the low 32
    bits and the source's ``(x, y)`` as two int16 lanes in the high 32 bits, so one gather composes
    both. The motion is then one 32-bit subtraction per pixel, ``(x + 0x8000, y) - (sx, sy)``: the
    bias keeps the ``x`` lane in ``[0, 0xFFFF]`` so that nothing borrows from the ``y`` lane, and
    ``^ 0x8000`` removes it.
    """

    def __init__(self, height: int, width: int) -> None:
        if sys.byteorder != "little":  # the int16 lanes of the packed words assume it
            raise RuntimeError("flatkd.codec needs a little-endian machine")
        padded = padded_shape(height, width)
        size = padded[0] * padded[1]
        pixels = height * width
        self.capacity = _BATCH
        self.raster = BlockRaster(height, width, self.capacity)
        self.height, self.width = height, width
        self._map = np.empty(size, dtype=np.int64)
        coordinates = self.raster.coordinates.astype(np.int64)
        self._identity = self.raster.identity.astype(np.int64) | (coordinates << 32)
        self._trace = np.empty(size, dtype=np.int64)
        self._spare = np.empty(size, dtype=np.int64)
        self._trace_xy = [
            t.view(np.int32)[1::2].reshape(padded)[:height, :width] for t in (self._trace, self._spare)
        ]
        self._grid = (self.raster.coordinates.reshape(padded)[:height, :width] + 0x8000).astype(np.int32)
        self._linear = np.empty(size, dtype=np.int64)
        # the reference frame as one 32-bit word (R, G, B, anything) per pixel of the padded frame,
        # read from packed RGB; the gathered words written back to packed RGB
        self._reference = np.zeros(size, dtype=np.uint32)
        self._reference_image = self._reference.reshape(padded)[:height, :width]
        self._rgb_bytes = np.zeros(3 * pixels + 1, dtype=np.uint8)
        self._rgb_image = self._rgb_bytes[: 3 * pixels].reshape(height, width, 3)
        self._rgb_words = _pixel_words(self._rgb_bytes, height, width)
        self._gathered = np.empty(size, dtype=np.uint32)
        self._gathered_image = self._gathered.reshape(padded)[:height, :width]
        self._warped_bytes = np.empty(3 * pixels + 1, dtype=np.uint8)
        self._warped = self._warped_bytes[: 3 * pixels].reshape(height, width, 3)
        self._warped_words = _pixel_words(self._warped_bytes, height, width)
        self._accumulate = True
        self._has_reference = False

    def start(self, rgb: np.ndarray | None, accumulate: bool = True) -> None:
        """Begin a GOP at its I-frame (``rgb``: ``(H, W, 3)`` uint8, or ``None`` when no residual of
        this GOP will need it)."""
        self._accumulate = accumulate
        np.copyto(self._trace, self._identity)
        self._set_reference(rgb)

    def _set_reference(self, rgb: np.ndarray | None) -> None:
        self._has_reference = rgb is not None
        if rgb is not None:
            np.copyto(self._rgb_image, rgb)
            np.copyto(self._reference_image, self._rgb_words)

    def steps(self, frames: Sequence[PFrame]) -> None:
        """Advance through consecutive P-frames, writing each one's wanted outputs."""
        if len(frames) > self.capacity:
            raise ValueError(f"at most {self.capacity} frames per batch, got {len(frames)}")
        # without accumulation only the frames with outputs need a map
        mapped = list(frames) if self._accumulate else [frame for frame in frames if frame.wanted]
        self.raster.prepare([frame.vectors for frame in mapped])
        maps = (self.raster.expand(i, self._map) for i in range(len(mapped)))
        for frame in frames:
            if self._accumulate:
                np.take(self._trace, next(maps), out=self._spare, mode="wrap")
                self._trace, self._spare = self._spare, self._trace
                self._trace_xy.reverse()
                self._write(frame)
            else:
                if frame.wanted:
                    np.take(self._identity, next(maps), out=self._trace, mode="wrap")
                    self._write(frame)
                self._set_reference(frame.rgb)

    def _write(self, frame: PFrame) -> None:
        if frame.mv_out is not None:
            motion = frame.mv_out.view(np.int32)[..., 0]
            np.subtract(self._grid, self._trace_xy[0], out=motion)
            np.bitwise_xor(motion, 0x8000, out=motion)
        if frame.residual_out is not None:
            if frame.rgb is None or not self._has_reference:
                raise ValueError("a residual needs this frame's RGB and its reference's")
            np.bitwise_and(self._trace, 0xFFFFFFFF, out=self._linear)
            np.take(self._reference, self._linear, out=self._gathered, mode="wrap")
            np.copyto(self._warped_words, self._gathered_image)
            np.subtract(frame.rgb, self._warped, out=frame.residual_out, dtype=np.int16)
