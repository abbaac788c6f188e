"""An independent decode and CoViAR's motion/residual rule, the oracle of the codec tests: a plain
PyAV decode with motion-vector export, a literal restatement of CoViAR's per-vector loop, and a
block-by-block painting of the same motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass
class Decoded:
    """One frame from an independent, plain PyAV decode."""

    picture_type: str
    rgb: np.ndarray
    vectors: np.ndarray | None


def decode_reference(path: Path, count: int | None = None) -> list[Decoded]:
    """Decode ``path`` from the start with PyAV's container decoder (motion-vector export on)."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            letter = "?IPB"[int(frame.pict_type)]
            frames.append(
                Decoded(letter, frame.to_ndarray(format="rgb24"), None if side is None else side.to_ndarray())
            )
            if count is not None and len(frames) == count:
                break
    return frames


def coviar_gop(frames: list[Decoded], accumulate: bool) -> tuple[np.ndarray, np.ndarray]:
    """CoViAR's ``create_and_load_mv_residual`` restated literally, one GOP at a time.

    ``frames[0]`` is the I-frame. For every P-frame, every block whose vector is non-zero is walked
    pixel by pixel (``x_start``, ``y_start`` loops of the C code), in the order FFmpeg exported
    them; ``accu_src`` is laid out as in C, ``[x * H * 2 + y * 2 + c]``. Returns int32 motion
    ``[n, H, W, 2]`` and residual ``[n, H, W, 3]`` (the final per-pixel subtraction, the C code's
    last loop, is written with numpy indexing). Frames without vectors count as all-static.
    """
    height, width = frames[0].rgb.shape[:2]
    motion = np.zeros((len(frames), height, width, 2), dtype=np.int32)
    residual = np.zeros((len(frames), height, width, 3), dtype=np.int32)
    accu_src_old = [0] * (width * height * 2)
    for x in range(width):
        for y in range(height):
            accu_src_old[x * height * 2 + y * 2] = x
            accu_src_old[x * height * 2 + y * 2 + 1] = y
    accu_src = list(accu_src_old)
    for t in range(1, len(frames)):
        mv_arr = np.zeros((height, width, 2), dtype=np.int32)
        for mv in [] if frames[t].vectors is None else frames[t].vectors:
            dst_x, dst_y, src_x, src_y = (
                int(mv["dst_x"]),
                int(mv["dst_y"]),
                int(mv["src_x"]),
                int(mv["src_y"]),
            )
            w, h = int(mv["w"]), int(mv["h"])
            if dst_x - src_x != 0 or dst_y - src_y != 0:
                val_x, val_y = dst_x - src_x, dst_y - src_y
                for x_start in range(-w // 2, w // 2):
                    for y_start in range(-h // 2, h // 2):
                        p_dst_x, p_dst_y = dst_x + x_start, dst_y + y_start
                        p_src_x, p_src_y = src_x + x_start, src_y + y_start
                        if (
                            0 <= p_dst_y < height
                            and 0 <= p_dst_x < width
                            and 0 <= p_src_y < height
                            and 0 <= p_src_x < width
                        ):
                            if accumulate:
                                for c in range(2):
                                    accu_src[p_dst_x * height * 2 + p_dst_y * 2 + c] = accu_src_old[
                                        p_src_x * height * 2 + p_src_y * 2 + c
                                    ]
                            else:
                                mv_arr[p_dst_y, p_dst_x] = (val_x, val_y)
        if accumulate:
            accu_src_old = list(accu_src)
            source = np.array(accu_src).reshape(width, height, 2).transpose(1, 0, 2)
        else:
            grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1)
            source = grid - mv_arr
        ys, xs = np.mgrid[:height, :width]
        motion[t, ..., 0] = xs - source[..., 0]
        motion[t, ..., 1] = ys - source[..., 1]
        reference = frames[0].rgb if accumulate else frames[t - 1].rgb
        residual[t] = frames[t].rgb.astype(np.int32) - reference[source[..., 1], source[..., 0]]
    return motion, residual


def paint_motion(vectors: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """CoViAR's non-accumulated motion field ``[H, W, 2]`` (int64) painted block by block.

    The pixels of a block that pass CoViAR's per-pixel test (destination and source both in the
    frame) form a rectangle, so each moving block is one slice assignment.
    """
    motion = np.zeros((height, width, 2), dtype=np.int64)
    for mv in [] if vectors is None else vectors:
        dst_x, dst_y, src_x, src_y = int(mv["dst_x"]), int(mv["dst_y"]), int(mv["src_x"]), int(mv["src_y"])
        w, h = int(mv["w"]), int(mv["h"])
        shift_x, shift_y = src_x - dst_x, src_y - dst_y
        if shift_x == 0 and shift_y == 0:
            continue
        x_lo = max(dst_x - w // 2, 0, -shift_x)
        x_hi = min(dst_x + w // 2, width, width - shift_x)
        y_lo = max(dst_y - h // 2, 0, -shift_y)
        y_hi = min(dst_y + h // 2, height, height - shift_y)
        if x_lo < x_hi and y_lo < y_hi:
            motion[y_lo:y_hi, x_lo:x_hi] = (-shift_x, -shift_y)
    return motion


def stepwise_gop(frames: list[Decoded]) -> tuple[np.ndarray, np.ndarray]:
    """Not-accumulated motion and residual of a GOP from :func:`paint_motion`: the residual is the
    frame minus the previous frame warped by the painted motion (int64 arrays)."""
    height, width = frames[0].rgb.shape[:2]
    ys, xs = np.mgrid[:height, :width]
    motion = np.zeros((len(frames), height, width, 2), dtype=np.int64)
    residual = np.zeros((len(frames), height, width, 3), dtype=np.int64)
    for t in range(1, len(frames)):
        motion[t] = paint_motion(frames[t].vectors, height, width)
        warped = frames[t - 1].rgb[ys - motion[t, ..., 1], xs - motion[t, ..., 0]]
        residual[t] = frames[t].rgb.astype(np.int64) - warped
    return motion, residual
