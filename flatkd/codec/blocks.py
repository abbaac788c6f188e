"""Motion-vector blocks -> a per-pixel map of where each pixel is copied from.

FFmpeg exports one row per predicted block (``AV_FRAME_DATA_MOTION_VECTORS``): size ``w x h``,
block centre ``(dst_x, dst_y)`` and source ``(src_x, src_y) = dst + trunc(motion / motion_scale)``.
CoViAR (Wu et al., CVPR 2018; ``coviar_data_loader.c``, ``create_and_load_mv_residual``) paints each
block with a non-zero vector pixel by pixel::

    for x in [-w/2, w/2), y in [-h/2, h/2):
        (px, py) = dst + (x, y);  (qx, qy) = src + (x, y)
        if (px, py) and (qx, qy) both lie in the frame: pixel (px, py) copies from (qx, qy)

Every other pixel (zero vector, intra block, source or destination outside the frame) copies from
itself. This module computes that map as linear indices ``q = qy * Wp + qx`` into a frame padded to
a multiple of 8 in both directions (``Hp x Wp``), for several frames at once and without a Python
loop over vectors or pixels.

FFmpeg's blocks (16x16, 16x8, 8x16, 8x8, at multiples of their size) are unions of the cells of an
8x8 grid, so the rule is evaluated per cell: each block writes its displacement ``(dx, dy)`` on the
cells it covers; a cell whose source cell lies wholly in the frame adds the constant
``dy * Wp + dx`` to the identity map on all its pixels (a broadcast); the few moving cells whose
source crosses the frame border get the per-pixel test above. Blocks of one frame do not overlap.
Pixels of the padding may get any in-frame source: no in-frame pixel ever reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flatkd.errors import InputFileError

CELL = 8
#: Largest block FFmpeg exports; a block reaches at most one cell past the padded frame.
MAX_BLOCK = 16


def _ceil_cells(n: int) -> int:
    return -(-n // CELL)


def padded_shape(height: int, width: int) -> tuple[int, int]:
    """``(Hp, Wp)``: the frame size rounded up to a multiple of the 8-pixel cell."""
    return _ceil_cells(height) * CELL, _ceil_cells(width) * CELL


class BlockRaster:
    """Source-index maps for up to ``capacity`` frames of ``height x width`` pixels at a time.

    Attributes:
        height, width: frame size.
        padded_height, padded_width: the size rounded up to a multiple of 8 (``Hp``, ``Wp``).
        identity: ``(Hp * Wp,)`` int64, ``identity[q] = q``: the map of a frame without motion.
            Maps are int64 (``np.intp``): ``np.take`` would convert any other index type first.
        coordinates: ``(Hp * Wp,)`` int32 whose bytes are the int16 pair ``(x, y)`` of pixel ``q``;
            ``coordinates.view(np.int16)`` reads them back.
    """

    def __init__(self, height: int, width: int, capacity: int = 1) -> None:
        self.height, self.width, self.capacity = height, width, capacity
        rows, cols = _ceil_cells(height), _ceil_cells(width)
        self._rows, self._cols = rows, cols
        self.padded_height, self.padded_width = rows * CELL, cols * CELL
        size = self.padded_height * self.padded_width
        self.identity = np.arange(size, dtype=np.int64)
        pairs = np.empty((self.padded_height, self.padded_width, 2), dtype=np.int16)
        pairs[..., 0] = np.arange(self.padded_width, dtype=np.int16)[None, :]
        pairs[..., 1] = np.arange(self.padded_height, dtype=np.int16)[:, None]
        self.coordinates = pairs.view(np.int32).reshape(size)
        self._identity_rows = self.identity.reshape(rows, CELL, self.padded_width)
        # displacement (dx, dy) per cell as an int16 pair in an int32 word, with one spare row and
        # column of cells for blocks that hang over the padded frame
        self._stride = cols + 1
        self._cells_per_frame = (rows + 1) * self._stride
        self._moves = np.zeros((capacity, rows + 1, self._stride), dtype=np.int32)
        cell_x = np.arange(cols, dtype=np.int32)[None, :] * CELL
        cell_y = np.arange(rows, dtype=np.int32)[:, None] * CELL
        # a cell's source lies wholly in the frame iff x0 + dx in [0, width - 8] and
        # y0 + dy in [0, height - 8], with (x0, y0) the cell's corner
        self._x_low, self._x_high = -cell_x, (width - CELL) - cell_x
        self._y_low, self._y_high = -cell_y, (height - CELL) - cell_y
        self._offset = np.empty((capacity, rows, cols), dtype=np.int64)
        self._span = np.arange(CELL, dtype=np.int32)
        # per-pixel fixes of the prepared frames: (targets, sources) and each frame's slice of them
        self._border: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._border_bounds = np.zeros(capacity + 1, dtype=np.int64)

    def source_index(self, vectors: np.ndarray | None) -> np.ndarray:
        """A new ``(Hp * Wp,)`` int64 map for one P-frame (see :meth:`prepare`)."""
        out = np.empty(self.padded_height * self.padded_width, dtype=np.int64)
        self.prepare([vectors])
        return self.expand(0, out)

    def prepare(self, frames: Sequence[np.ndarray | None]) -> None:
        """Do the per-block work for up to :attr:`capacity` P-frames at once; :meth:`expand` then
        writes each frame's map (one at a time, so that a map is still in cache when used).

        Each entry of ``frames`` is the structured array of ``MotionVectors.to_ndarray()`` (fields
        ``w, h, src_x, src_y, dst_x, dst_y``; all blocks predict from the previous frame), or
        ``None`` for a frame without exported vectors.
        """
        count = len(frames)
        if count > self.capacity:
            raise ValueError(f"at most {self.capacity} frames at once, got {count}")
        moves = self._moves[:count]
        self._paint(frames, moves)
        grid = moves[:, : self._rows, : self._cols]
        pairs = grid.view(np.int16).reshape(*grid.shape, 2)
        dx, dy = pairs[..., 0], pairs[..., 1]
        clean = (dx >= self._x_low) & (dx <= self._x_high) & (dy >= self._y_low) & (dy <= self._y_high)
        offset = self._offset[:count]
        np.multiply(dy, self.padded_width, out=offset, dtype=np.int64)  # not int16: dy * Wp overflows it
        np.add(offset, dx, out=offset)
        np.multiply(offset, clean, out=offset)
        frame, row, col = np.nonzero((grid != 0) & ~clean)
        self._border = self._border_pixels(row, col, dx[frame, row, col], dy[frame, row, col])
        self._border_bounds = np.searchsorted(frame, np.arange(count + 1))

    def expand(self, i: int, out: np.ndarray) -> np.ndarray:
        """Write the map of frame ``i`` of the last :meth:`prepare` into ``out`` (``(Hp * Wp,)``
        int64): the linear source index of every pixel. Returns ``out``."""
        rows = out.reshape(self._rows, CELL, self.padded_width)
        np.add(self._identity_rows, np.repeat(self._offset[i], CELL, axis=1)[:, None, :], out=rows)
        first, last = self._border_bounds[i], self._border_bounds[i + 1]
        if last > first:
            target, source = self._border
            out[target[first:last]] = source[first:last]
        return out

    def _paint(self, frames: Sequence[np.ndarray | None], moves: np.ndarray) -> None:
        """Write each block's displacement on the cells it covers; zero elsewhere."""
        moves.fill(0)
        present = [(i, v) for i, v in enumerate(frames) if v is not None and v.size]
        if not present:
            return
        # concatenating the raw bytes skips numpy's slow per-field promotion of structured arrays
        vectors = np.concatenate([v.view(np.uint8) for _, v in present]).view(present[0][1].dtype)
        frame = np.repeat([i for i, _ in present], [v.size for _, v in present])
        size = np.stack([vectors["w"], vectors["h"]], axis=1).astype(np.int32)
        dst = np.stack([vectors["dst_x"], vectors["dst_y"]], axis=1).astype(np.int32)
        corner = dst - size // 2
        if np.any((corner | size) & (CELL - 1)) or size.max() > MAX_BLOCK or corner.min() < 0:
            raise InputFileError(
                "motion vectors describe blocks off the 8x8 grid, which flatkd does not read"
            )
        displacement = np.empty((len(vectors), 2), dtype=np.int16)
        displacement[:, 0] = vectors["src_x"] - vectors["dst_x"]
        displacement[:, 1] = vectors["src_y"] - vectors["dst_y"]
        # first and last cell column/row of each block: (corner, corner + size - 1) // 8
        first, last = corner // CELL, (corner + size - 1) // CELL
        base = frame * self._cells_per_frame
        cells = np.stack(
            [
                base + first[:, 1] * self._stride + first[:, 0],
                base + first[:, 1] * self._stride + last[:, 0],
                base + last[:, 1] * self._stride + first[:, 0],
                base + last[:, 1] * self._stride + last[:, 0],
            ],
            axis=1,
        )  # a block one cell wide or high names a cell twice, with the same value
        moves.reshape(-1)[cells] = displacement.view(np.int32)

    def _border_pixels(
        self, cell_row: np.ndarray, cell_col: np.ndarray, dx: np.ndarray, dy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """CoViAR's per-pixel rule on moving cells whose source crosses the frame border: the
        ``(cells, 8, 8)`` target pixels and the pixels they copy from (themselves where invalid).
        A pixel is valid iff its column and its row are (destination and source in the frame)."""
        dx = dx.astype(np.int32)[:, None, None]
        dy = dy.astype(np.int32)[:, None, None]
        px = (cell_col * CELL).astype(np.int32)[:, None, None] + self._span[None, None, :]
        py = (cell_row * CELL).astype(np.int32)[:, None, None] + self._span[None, :, None]
        valid = ((px < self.width) & (px + dx >= 0) & (px + dx < self.width)) & (
            (py < self.height) & (py + dy >= 0) & (py + dy < self.height)
        )
        target = py * self.padded_width + px
        return target, np.where(valid, target + (dy * self.padded_width + dx), target)
