"""Motion vectors and residuals against CoViAR's rule: a hand-computed block, the literal per-vector
loop on real clips (bit-exact on every pixel), and the compensation sanity check."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers.coviar import Decoded, coviar_gop, decode_reference, stepwise_gop
from helpers.videos import transcoded

from flatkd.codec import compensation
from flatkd.codec.blocks import BlockRaster
from flatkd.codec.compensation import GopCompensator, PFrame
from flatkd.codec.reader import CompressedVideo

_FIELDS = [("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"), ("dst_x", "<i2"), ("dst_y", "<i2")]


def _vectors(*rows: tuple[int, int, int, int, int, int]) -> np.ndarray:
    """Rows of (w, h, src_x, src_y, dst_x, dst_y), dst the block centre as FFmpeg exports it."""
    return np.array(list(rows), dtype=_FIELDS)


def test_source_map_of_hand_made_blocks() -> None:
    # a 28 x 20 frame, padded to 32 x 24
    raster = BlockRaster(20, 28)
    vectors = _vectors(
        (16, 16, 24 + 3, 8 + 2, 24, 8),  # A: x 16..31, y 0..15 moved by (+3, +2); hangs over x = 28
        (8, 8, 12 - 5, 20, 12, 20),  # B: x 8..15, y 16..23 moved by (-5, 0); hangs over y = 20
        (8, 16, 4, 8, 4, 8),  # C: x 0..7, y 0..15, zero vector
        (8, 8, 4, 20 - 10, 4, 20),  # D: x 0..7, y 16..23 moved by (0, -10)
        (8, 8, 28 + 2, 20 - 18, 28, 20),  # E: x 24..31, y 16..23 moved by (+2, -18)
    )
    got = raster.source_index(vectors).reshape(24, 32)
    ys, xs = np.mgrid[:24, :32]
    expected = ys * 32 + xs
    # pixel (x, y) of a block copies (x + dx, y + dy) iff that source lies in the frame
    a = (xs >= 16) & (ys < 16) & (xs + 3 < 28)  # x 16..24
    expected[a] = ((ys + 2) * 32 + xs + 3)[a]
    b = (xs >= 8) & (xs < 16) & (ys >= 16)
    expected[b] = (ys * 32 + xs - 5)[b]
    d = (xs < 8) & (ys >= 16)
    expected[d] = ((ys - 10) * 32 + xs)[d]
    e = (xs >= 24) & (ys >= 16) & (xs + 2 < 28) & (ys - 18 >= 0)  # x 24..25, y 18..19
    expected[e] = ((ys - 18) * 32 + xs + 2)[e]
    in_frame = (ys < 20) & (xs < 28)
    np.testing.assert_array_equal(got[in_frame], expected[in_frame])
    assert (got >= 0).all() and (got < 24 * 32).all()
    sources = got[in_frame]
    assert ((sources // 32 < 20) & (sources % 32 < 28)).all()


def test_long_vertical_moves_on_a_wide_frame() -> None:
    # dy * Wp must not overflow int16: a 16x16 block moved up by 100 rows in a 256 x 344 frame
    raster = BlockRaster(256, 344)
    got = raster.source_index(_vectors((16, 16, 168 + 141, 184 - 100, 168, 184))).reshape(256, 344)
    ys, xs = np.mgrid[176:192, 160:176]
    np.testing.assert_array_equal(got[176:192, 160:176], (ys - 100) * 344 + xs + 141)


def _check_clip_against_coviar(path: Path, gops: int) -> int:
    """Compare the reader with CoViAR's rule on the first ``gops`` GOPs: accumulated against the
    literal loop, not accumulated against the block painting; return the number of moving blocks
    whose source leaves the frame (the border path)."""
    video = CompressedVideo(path)
    end = video.info.gop_starts[gops]
    reference = decode_reference(path, end)
    border = 0
    for accumulate in (True, False):
        for gop, start in zip(video.iter_gops(accumulate), video.info.gop_starts[:gops], strict=False):
            frames = reference[start : start + len(gop)]
            motion, residual = coviar_gop(frames, accumulate=True) if accumulate else stepwise_gop(frames)
            np.testing.assert_array_equal(gop.iframe, frames[0].rgb)
            np.testing.assert_array_equal(gop.mv, motion)
            np.testing.assert_array_equal(gop.residual, residual)
            assert np.abs(gop.mv).max() > 0
    height, width = reference[0].rgb.shape[:2]
    for frame in reference:
        if frame.vectors is not None:
            v = frame.vectors
            x0, y0 = v["src_x"] - v["w"] // 2, v["src_y"] - v["h"] // 2
            out = (x0 < 0) | (y0 < 0) | (x0 + v["w"] > width) | (y0 + v["h"] > height)
            border += int((out & ((v["src_x"] != v["dst_x"]) | (v["src_y"] != v["dst_y"]))).sum())
    return border


@pytest.mark.parametrize(("clip", "codec"), [("bikes", "mpeg4"), ("bikes", "h264")])
def test_reader_equals_coviar_per_vector_loop_on_every_pixel(
    tmp_path_factory: pytest.TempPathFactory, clip: str, codec: str
) -> None:
    path = transcoded(tmp_path_factory, clip, codec)
    border_blocks = _check_clip_against_coviar(path, gops=2)
    assert border_blocks > 0, "the clip should exercise sources leaving the frame"


def test_motion_compensation_explains_the_frame(tmp_path_factory: pytest.TempPathFactory) -> None:
    """On pixels of blocks with a non-zero vector, the residual (frame minus the block-copy warp of
    the previous frame) has far less energy than the plain frame difference, and the vectors with
    their sign flipped compensate worse than the true ones."""
    path = transcoded(tmp_path_factory, "carphone_pristine", "mpeg4")
    frames = decode_reference(path, 24)
    raster = BlockRaster(*frames[0].rgb.shape[:2])
    padded = (raster.padded_height, raster.padded_width)
    crop = (slice(0, raster.height), slice(0, raster.width))
    energy = {"compensated": 0, "flipped": 0, "plain": 0}
    for previous, current in itertools.pairwise(frames):
        if current.picture_type != "P" or current.vectors is None:
            continue
        flip = current.vectors.copy()
        flip["src_x"] = 2 * flip["dst_x"] - current.vectors["src_x"]
        flip["src_y"] = 2 * flip["dst_y"] - current.vectors["src_y"]
        reference = np.zeros((*padded, 3), dtype=np.int64)
        reference[crop] = previous.rgb
        reference = reference.reshape(-1, 3)
        frame = current.rgb.astype(np.int64)
        true_map = raster.source_index(current.vectors)
        moving = (true_map != raster.identity).reshape(padded)[crop]
        for name, source in (
            ("compensated", true_map),
            ("flipped", raster.source_index(flip)),
            ("plain", raster.identity),
        ):
            warped = reference[source].reshape(*padded, 3)[crop]
            energy[name] += int(((frame - warped)[moving] ** 2).sum())
    assert energy["plain"] > 0
    assert energy["compensated"] < 0.25 * energy["plain"]
    assert energy["flipped"] > 2 * energy["compensated"]


def test_compensator_batches_give_the_same_result_as_single_frames() -> None:
    rng = np.random.default_rng(0)
    height, width, count = 24, 40, 5
    rgb = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count + 1)]
    vectors = []
    for _ in range(count):
        rows = []
        for by in range(0, 24, 16):
            for bx in range(0, 40, 16):
                dx, dy = rng.integers(-6, 7, size=2)
                rows.append((16, 16, bx + 8 + dx, by + 8 + dy, bx + 8, by + 8))
        vectors.append(_vectors(*rows))
    outputs = []
    for batch in (1, count):
        compensator = GopCompensator(height, width)
        compensator.start(rgb[0])
        mv = np.empty((count, height, width, 2), dtype=np.int16)
        residual = np.empty((count, height, width, 3), dtype=np.int16)
        frames = [PFrame(vectors[i], rgb[i + 1], mv[i], residual[i]) for i in range(count)]
        for first in range(0, count, batch):
            compensator.steps(frames[first : first + batch])
        outputs.append((mv, residual))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    decoded = [Decoded("I", rgb[0], None)] + [Decoded("P", rgb[i + 1], vectors[i]) for i in range(count)]
    motion, residual = coviar_gop(decoded, accumulate=True)
    np.testing.assert_array_equal(outputs[0][0], motion[1:])
    np.testing.assert_array_equal(outputs[0][1], residual[1:])


def test_moves_list_the_pixels_whose_source_differs_from_themselves() -> None:
    """The sparse update's (targets, sources) rebuild exactly the map of the dense update, on the
    hand-made blocks (border cells, padding) and on two frames at once."""
    raster = BlockRaster(20, 28, capacity=2)
    vectors = _vectors(
        (16, 16, 24 + 3, 8 + 2, 24, 8),
        (8, 8, 12 - 5, 20, 12, 20),
        (8, 16, 4, 8, 4, 8),
        (8, 8, 4, 20 - 10, 4, 20),
        (8, 8, 28 + 2, 20 - 18, 28, 20),
    )
    raster.prepare([vectors, vectors[::-1][:3]])
    for i in range(2):
        dense = raster.expand(i, np.empty(24 * 32, dtype=np.int64))
        targets, sources = raster.moves(i)
        assert len(targets) == raster.moving_pixels(i)
        sparse = raster.identity.copy()
        sparse[targets] = sources
        np.testing.assert_array_equal(sparse, dense)
    assert raster.moving_pixels(1) < raster.moving_pixels(0)


def test_sparse_and_dense_updates_equal_coviar_on_a_clip_that_uses_both(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames with few moving cells update only those (``raster.moves``), the others gather the
    whole frame (``raster.expand``). On the first GOP of a real clip (also checked by the test
    above) the default mixes both; forcing either path for every frame gives the same bits as
    CoViAR's literal loop (accumulated) and as the block painting (not accumulated)."""
    path = transcoded(tmp_path_factory, "bikes", "mpeg4")
    video = CompressedVideo(path)
    stop = video.info.gop_starts[1]
    frames = decode_reference(path, stop)
    expected = {True: coviar_gop(frames, accumulate=True), False: stepwise_gop(frames)}
    calls = {"expand": 0, "moves": 0}
    raster = video._compensator.raster

    def counted(name: str, method: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            calls[name] += 1
            return method(*args)

        return call

    for name in calls:
        monkeypatch.setattr(raster, name, counted(name, getattr(raster, name)))
    for fraction in (compensation._SPARSE_FRACTION, 0.0, 2.0):
        monkeypatch.setattr(compensation, "_SPARSE_FRACTION", fraction)
        before = dict(calls)
        for accumulate, (motion, residual) in expected.items():
            read = video.read(range(1, stop), accumulate)
            np.testing.assert_array_equal(read.mv, motion[1:])
            np.testing.assert_array_equal(read.residual, residual[1:])
        used = {name: calls[name] - before[name] for name in calls}
        if fraction == 0.0:
            assert used["moves"] == 0
        elif fraction == 2.0:
            assert used["expand"] == 0
        else:
            assert used["expand"] > 0 and used["moves"] > 0, used
