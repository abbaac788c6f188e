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
8x8 grid, so the rule is evaluated per block and written per cell: a block whose source block
``[x0 + dx, x0 + dx + w) x [y0 + dy, y0 + dy + h)`` lies wholly in the frame writes the constant
``dy * Wp + dx`` on the cells it covers, which the map adds to the identity on all their pixels (a
broadcast); the few moving blocks whose source crosses the frame border get the per-pixel test above
on each of their cells. Blocks of one frame do not overlap. Pixels of the padding may get any
in-frame source: no in-frame pixel ever reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from flatkd.errors import InputFileError

CELL = 8
#: Largest block FFmpeg exports; a block reaches at most one cell past the padded frame.
MAX_BLOCK = 16
#: The fields read from a motion-vector row, in the order they lie in it: ``w`` and ``h`` (uint8)
#: then ``src_x, src_y, dst_x, dst_y`` (int16), as PyAV exports them.
_FIELDS = (("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"), ("dst_x", "<i2"), ("dst_y", "<i2"))


def _ceil_cells(n: int) -> int:
    return -(-n // CELL)


@functools.cache
def _first_column(dtype: np.dtype) -> int:
    """Where the fields :data:`_FIELDS` start in a motion-vector row, counted in 16-bit words: the
    rows are then read as five 16-bit columns (``w | h << 8``, then the four positions)."""
    fields = dtype.fields or {}
    try:
        start = fields["w"][1]
        laid_out = all(
            fields[name][0] == np.dtype(kind) and fields[name][1] == start + at
            for (name, kind), at in zip(_FIELDS, (0, 1, 2, 4, 6, 8), strict=True)
        )
    except KeyError as missing:
        raise ValueError(f"motion-vector rows lack the field {missing}") from None
    if not laid_out or start % 2 or dtype.itemsize % 2:
        raise ValueError(f"unexpected motion-vector row layout {dtype}")
    return start // 2


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
        # the map offset dy * Wp + dx of each cell, with one spare row and column of cells for
        # blocks that hang over the padded frame; the (rows, cols) view of the frame's cells
        self._stride = cols + 1
        self._cells_per_frame = (rows + 1) * self._stride
        self._offsets = np.zeros((capacity, rows + 1, self._stride), dtype=np.int64)
        self._offset = self._offsets[:, :rows, :cols]
        self._span = np.arange(CELL, dtype=np.int32)
        self._frame_size = np.array([[width], [height]], dtype=np.int16)
        # (column, row) steps from a block's first cell to its four corner cells
        self._corner_steps = np.array([[0, 1, 0, 1], [0, 0, 1, 1]], dtype=np.int32)
        # per-pixel fixes of the prepared frames: (targets, sources) and each frame's slice of them
        self._border: tuple[np.ndarray, np.ndarray] = (np.zeros((CELL * CELL, 0), np.int32),) * 2
        self._border_bounds = np.zeros(capacity + 1, dtype=np.int64)
        # the cells with an offset, as indices into _offsets, and each frame's slice of them
        self._shifted = np.zeros(0, dtype=np.int64)
        self._shifted_bounds = np.zeros(capacity + 1, dtype=np.int64)
        self._frame_starts = np.arange(capacity + 1) * self._cells_per_frame
        # the moving pixels of one frame, cell by cell: each cell's first pixel plus the 64
        # offsets of its pixels; (targets, sources) buffers for a frame whose cells all move,
        # the first of which also holds a whole map (a frame needs one or the other)
        origin = np.arange(rows + 1)[:, None] * (CELL * self.padded_width) + np.arange(cols + 1) * CELL
        self._cell_origin = origin.reshape(-1)  # over the cells of _offsets (spare ones unused)
        self._cell_pixels = (self._span[:, None] * self.padded_width + self._span[None, :]).reshape(-1)
        self._scratch = np.empty((2, size), dtype=np.int64)

    def source_index(self, vectors: np.ndarray | None) -> np.ndarray:
        """A new ``(Hp * Wp,)`` int64 map for one P-frame (see :meth:`prepare`)."""
        out = np.empty(self.padded_height * self.padded_width, dtype=np.int64)
        self.prepare([vectors])
        return self.expand(0, out)

    def prepare(self, frames: Sequence[np.ndarray | None]) -> None:
        """Do the per-block work for up to :attr:`capacity` P-frames at once; :meth:`expand` or
        :meth:`moves` then give each frame's map (one at a time, so that a map is still in cache
        when used).

        Each entry of ``frames`` is the structured array of ``MotionVectors.to_ndarray()`` (fields
        ``w, h, src_x, src_y, dst_x, dst_y``; all blocks predict from the previous frame), or
        ``None`` for a frame without exported vectors.
        """
        count = len(frames)
        if count > self.capacity:
            raise ValueError(f"at most {self.capacity} frames at once, got {count}")
        offsets = self._offsets[:count]
        offsets.fill(0)
        self._border = (np.zeros((CELL * CELL, 0), np.int32),) * 2
        self._border_bounds = np.zeros(count + 1, dtype=np.int64)
        present = [(i, v) for i, v in enumerate(frames) if v is not None and v.size]
        if present:
            self._paint(present, count)
            # blocks hanging over the padded frame wrote on the spare cells: clear them
            offsets[:, self._rows] = 0
            offsets[:, :, self._cols] = 0
        self._shifted = np.flatnonzero(offsets)
        self._shifted_bounds = np.searchsorted(self._shifted, self._frame_starts[: count + 1])

    def moving_pixels(self, i: int) -> int:
        """How many pixels :meth:`moves` lists for frame ``i`` of the last :meth:`prepare`: 64 per
        cell with a non-zero displacement (where the source crosses the frame border, some of
        them copy from themselves)."""
        cells = self._shifted_bounds[i + 1] - self._shifted_bounds[i]
        cells += self._border_bounds[i + 1] - self._border_bounds[i]
        return int(cells) * CELL * CELL

    def expand(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Write the map of frame ``i`` of the last :meth:`prepare` into ``out`` (``(Hp * Wp,)``
        int64; by default a buffer that the next :meth:`expand` or :meth:`moves` overwrites): the
        linear source index of every pixel. Returns ``out``."""
        out = self._scratch[0] if out is None else out
        rows = out.reshape(self._rows, CELL, self.padded_width)
        np.add(self._identity_rows, np.repeat(self._offset[i], CELL, axis=1)[:, None, :], out=rows)
        first, last = self._border_bounds[i], self._border_bounds[i + 1]
        if last > first:
            target, source = self._border
            out[target[:, first:last]] = source[:, first:last]
        return out

    def moves(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The pixels of frame ``i`` of the last :meth:`prepare` whose source is not themselves:
        ``(targets, sources)``, two int64 arrays of :meth:`moving_pixels` linear indices, cell by
        cell (a pixel of a border cell whose source is invalid is listed with itself). The map
        of :meth:`expand` is the identity with ``map[targets] = sources``. The arrays are views of
        buffers that the next call overwrites."""
        offset = self._offsets[i].reshape(-1)
        cells = self._shifted[self._shifted_bounds[i] : self._shifted_bounds[i + 1]] - self._frame_starts[i]
        clean = cells.size * CELL * CELL
        first, last = self._border_bounds[i], self._border_bounds[i + 1]
        total = clean + (last - first) * CELL * CELL
        targets, sources = self._scratch[0, :total], self._scratch[1, :total]
        block = targets[:clean].reshape(-1, CELL * CELL)
        np.add(self._cell_origin[cells][:, None], self._cell_pixels, out=block)
        np.add(block, offset[cells][:, None], out=sources[:clean].reshape(block.shape))
        border_targets, border_sources = self._border
        targets[clean:].reshape(CELL * CELL, -1)[...] = border_targets[:, first:last]
        sources[clean:].reshape(CELL * CELL, -1)[...] = border_sources[:, first:last]
        return targets, sources

    def _paint(self, present: list[tuple[int, np.ndarray]], count: int) -> None:
        """Write each clean moving block's offset on the cells it covers, and collect (and count)
        the per-pixel fixes of the moving blocks whose source crosses the frame border.

        Per-block quantities are int16 rows of ``(2, n)`` arrays (``x`` then ``y``), read from the
        rows' bytes in one copy, so that numpy's loops run along the blocks; cell indices are
        int64 (``rows * cols`` overflows int16 on large frames)."""
        dtype = present[0][1].dtype
        column = _first_column(dtype)
        # concatenating the raw bytes skips numpy's slow per-field promotion of structured arrays
        table = np.concatenate([np.ascontiguousarray(v).view(np.uint8) for _, v in present])
        table = table.view("<u2").reshape(-1, dtype.itemsize // 2)
        words = np.ascontiguousarray(table[:, column : column + 5].T)  # w | h << 8, src_x, ... dst_y
        frame = np.repeat([i for i, _ in present], [v.size for _, v in present])
        size = words[0].view(np.uint8).reshape(-1, 2).T.astype(np.int16)  # (w, h)
        position = words[1:].view("<i2")
        displacement = position[:2] - position[2:]  # (dx, dy) = src - dst
        corner = position[2:] - (size >> 1)  # (x0, y0)
        end = corner + size
        if np.any((corner | size) & (CELL - 1)) or size.max() > MAX_BLOCK or corner.min() < 0:
            raise InputFileError(
                "motion vectors describe blocks off the 8x8 grid, which flatkd does not read"
            )
        source_corner, source_end = corner + displacement, end + displacement
        clean = (source_corner.min(axis=0) >= 0) & (source_end <= self._frame_size).all(axis=0)
        moving = displacement.any(axis=0)
        # first cell column/row of each block and whether it reaches one cell further right/down
        first = corner >> 3
        wide = (end - 1) >> 3 != first
        shifted = np.flatnonzero(moving & clean)
        if shifted.size:
            offset = np.multiply(displacement[1, shifted], self.padded_width, dtype=np.int64)
            offset += displacement[0, shifted]
            top_left = np.multiply(first[1, shifted], self._stride, dtype=np.int64)
            top_left += first[0, shifted]
            top_left += frame[shifted] * self._cells_per_frame
            right, down = wide[0, shifted], wide[1, shifted] * self._stride
            # a block one cell wide or high names a cell twice, with the same value
            corners = np.stack([top_left, top_left + right, top_left + down, top_left + right + down])
            self._offsets.reshape(-1)[corners] = offset
        border = np.flatnonzero(moving & ~clean)
        if border.size:
            self._border_cells(border, frame, first, wide, displacement, count)

    def _border_cells(
        self,
        border: np.ndarray,
        frame: np.ndarray,
        first: np.ndarray,
        wide: np.ndarray,
        displacement: np.ndarray,
        count: int,
    ) -> None:
        """Collect the per-pixel fixes of the ``border`` blocks' cells that lie in the padded frame,
        each cell once, frame by frame."""
        column = first[0, border].astype(np.int32)[:, None] + self._corner_steps[0]
        row = first[1, border].astype(np.int32)[:, None] + self._corner_steps[1]
        keep = (column < self._cols) & (row < self._rows)
        keep[:, 1::2] &= wide[0, border][:, None]
        keep[:, 2:] &= wide[1, border][:, None]
        block = np.repeat(border, np.count_nonzero(keep, axis=1))
        dx, dy = displacement[:, block].astype(np.int32)
        self._border = self._border_pixels(row[keep], column[keep], dx, dy)
        self._border_bounds[1:] = np.cumsum(np.bincount(frame[block], minlength=count))

    def _border_pixels(
        self, cell_row: np.ndarray, cell_col: np.ndarray, dx: np.ndarray, dy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """CoViAR's per-pixel rule on moving cells whose source crosses the frame border: the
        ``(64, cells)`` target pixels (row-major within the cell) and the pixels they copy from
        (themselves where invalid). A pixel is valid iff its column and its row are (destination
        and source in the frame), so the test is done on the 8 columns and the 8 rows of each
        cell. The cells are the last axis, so that numpy's inner loops run over them."""
        px = (cell_col * CELL)[None, :] + self._span[:, None]  # (8, cells)
        py = (cell_row * CELL)[None, :] + self._span[:, None]
        qx, qy = px + dx, py + dy
        valid_x = (px < self.width) & (qx >= 0) & (qx < self.width)
        valid_y = (py < self.height) & (qy >= 0) & (qy < self.height)
        target = (py * self.padded_width)[:, None, :] + px[None, :, :]  # (8, 8, cells)
        # a multiplication by the mask, not np.where: its branches mispredict on random masks
        source = target + (dy * self.padded_width + dx) * (valid_y[:, None, :] & valid_x[None, :, :])
        return target.reshape(CELL * CELL, -1), source.reshape(CELL * CELL, -1)
