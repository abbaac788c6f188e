"""The motion colour code against hand-computed Middlebury colours, and the preview figure."""

from __future__ import annotations

import numpy as np

from flatkd.plots.flow import colour_wheel, compressed_preview, flow_to_rgb, residual_to_rgb, wheel_legend


def test_wheel_has_the_55_middlebury_steps() -> None:
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    # starts of the six transitions: red, yellow, green, cyan, blue, magenta
    starts = np.cumsum([0, 15, 6, 4, 11, 13])
    expected = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]]
    np.testing.assert_allclose(wheel[starts], expected)
    np.testing.assert_allclose(wheel[1], [1, 1 / 15, 0])  # red -> yellow, one step


def test_colours_of_hand_computed_vectors() -> None:
    mv = np.array([[0, 0], [1, 0], [-1, 0], [2, 0], [0, 0]], dtype=np.int16)
    mv_half = np.array([[1, 0]], dtype=np.float64) / 2
    rgb = flow_to_rgb(mv, max_length=1.0)
    assert rgb[0].tolist() == [255, 255, 255]  # no motion: white
    assert rgb[1].tolist() == [255, 0, 0]  # rightward at full length: red
    # leftward: atan2(0, 1) = 0 -> position 27 of 54 -> cyan->blue transition, step 2 of 11
    assert rgb[2].tolist() == [0, round(255 * (1 - 2 / 11)), 255]
    assert rgb[3].tolist() == [191, 0, 0]  # twice too long: 0.75 of the colour
    assert flow_to_rgb(mv_half, max_length=1.0)[0].tolist() == [255, 128, 128]  # half length: half saturated
    assert flow_to_rgb(mv[:1]).tolist() == [[255, 255, 255]]  # all zero: no division by zero


def test_legend_and_residual_display() -> None:
    legend = wheel_legend(33)
    assert legend.shape == (33, 33, 4) and legend[0, 0, 3] == 0 and legend[16, 16, 3] == 255
    assert legend[16, 16, :3].tolist() == [255, 255, 255] and legend[16, 32, :3].tolist() == [255, 0, 0]
    assert residual_to_rgb(np.array([-300, -128, 0, 5, 200])).tolist() == [0, 0, 128, 133, 255]


def test_preview_has_three_panels_per_frame() -> None:
    rng = np.random.default_rng(0)
    iframes = rng.integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    mv = rng.integers(-5, 6, (2, 16, 24, 2)).astype(np.int16)
    residual = rng.integers(-40, 41, (2, 16, 24, 3)).astype(np.int16)
    fig = compressed_preview(iframes, mv, residual, ["frame 1", "frame 2"], accumulated=True)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 3
    np.testing.assert_array_equal(images[0].images[0].get_array(), iframes[0])
    lengths = np.hypot(mv[..., 0], mv[..., 1])
    scale = np.percentile(lengths[lengths > 0], 99)  # one colour scale for all rows
    np.testing.assert_array_equal(images[4].images[0].get_array(), flow_to_rgb(mv[1], scale))
    (legend,) = images[1].child_axes  # the colour wheel sits on the first motion panel
    assert legend.images[0].get_array().shape[-1] == 4
    assert fig.axes[0].get_ylabel() == "frame 1" and fig.axes[2].get_title() == "accumulated residual"
