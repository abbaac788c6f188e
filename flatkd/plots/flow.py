"""Compressed-domain previews: motion as colour, and I-frame | motion | residual side by side.

Motion is drawn with the optical-flow colour code of the Middlebury benchmark (Baker et al., "A
Database and Evaluation Methodology for Optical Flow", IJCV 2011, §4.3): the direction picks a hue
on a wheel of 55 colours blended between red, yellow, green, cyan, blue and magenta (15, 6, 4, 11,
13 and 6 steps), the length picks the saturation (white = no motion, full colour = the largest
length shown). Here a vector ``(x, y)`` is CoViAR's motion, destination minus source, so the colour
gives the direction in which content moved; image ``y`` points down.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from flatkd.plots import paper_style

#: Hue transitions of the wheel: steps between consecutive primaries (R, Y, G, C, B, M, back to R).
_WHEEL_STEPS = (15, 6, 4, 11, 13, 6)
_PRIMARIES = np.array(
    [[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255], [0, 0, 255], [255, 0, 255]], dtype=np.float64
)


def colour_wheel() -> np.ndarray:
    """The 55 wheel colours, ``(55, 3)`` floats in [0, 1], starting at red."""
    colours = []
    for i, steps in enumerate(_WHEEL_STEPS):
        start, stop = _PRIMARIES[i], _PRIMARIES[(i + 1) % len(_PRIMARIES)]
        t = np.arange(steps)[:, None] / steps
        colours.append((1 - t) * start + t * stop)
    return np.concatenate(colours) / 255.0


def flow_to_rgb(mv: np.ndarray, max_length: float | None = None) -> np.ndarray:
    """Colour-code motion ``mv`` (``[..., 2]``, ``(x, y)``) as ``uint8 [..., 3]`` RGB.

    ``max_length`` is the length drawn at full colour (default: the largest in ``mv``); longer
    vectors are darkened, as in the Middlebury code.
    """
    x = mv[..., 0].astype(np.float64)
    y = mv[..., 1].astype(np.float64)
    length = np.hypot(x, y)
    scale = float(length.max()) if max_length is None else float(max_length)
    radius = length / scale if scale > 0 else np.zeros_like(length)
    wheel = colour_wheel()
    # angle of the motion measured so that rightward motion is red, the wheel's first colour
    position = (np.arctan2(-y, -x) / np.pi + 1) / 2 * (len(wheel) - 1)
    low = np.floor(position).astype(int)
    high = (low + 1) % len(wheel)
    weight = (position - low)[..., None]
    colour = (1 - weight) * wheel[low] + weight * wheel[high]
    inside = (radius <= 1)[..., None]
    saturated = 1 - radius[..., None] * (1 - colour)
    colour = np.where(inside, saturated, colour * 0.75)
    return np.round(colour * 255).astype(np.uint8)


def wheel_legend(size: int = 64) -> np.ndarray:
    """An RGBA ``(size, size, 4)`` disc showing the colour of every direction at every length."""
    axis = np.linspace(-1, 1, size)
    x, y = np.meshgrid(axis, axis)
    rgb = flow_to_rgb(np.stack([x, y], axis=-1), max_length=1.0)
    alpha = np.where(np.hypot(x, y) <= 1, 255, 0).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def residual_to_rgb(residual: np.ndarray) -> np.ndarray:
    """Residual ``int [..., 3]`` shown as ``uint8`` RGB: mid-grey is zero (``residual + 128``)."""
    return np.clip(residual.astype(np.int32) + 128, 0, 255).astype(np.uint8)


def compressed_preview(
    iframes: np.ndarray,
    mv: np.ndarray,
    residual: np.ndarray,
    titles: list[str],
    accumulated: bool,
) -> Figure:
    """One row per frame: its GOP's I-frame, its motion (colour wheel, one scale for all rows, with
    a wheel legend) and its residual (mid-grey = 0).

    Args:
        iframes: ``uint8 [N, H, W, 3]``.
        mv: ``int [N, H, W, 2]``.
        residual: ``int [N, H, W, 3]``.
        titles: one row label per frame.
        accumulated: whether ``mv``/``residual`` trace back to the I-frame (for the column titles).
    """
    rows = len(titles)
    height, width = iframes.shape[1:3]
    # full colour at the 99th percentile of the moving pixels' lengths, so a few outliers do not
    # wash out the rest (longer vectors are drawn darker)
    lengths = np.hypot(mv[..., 0], mv[..., 1])
    scale = float(np.percentile(lengths[lengths > 0], 99)) if lengths.any() else 1.0
    kind = "accumulated " if accumulated else ""
    with paper_style():
        fig = Figure(figsize=(3 * 2.4, rows * 2.4 * height / width + 0.5), layout="constrained")
        axes = fig.subplots(rows, 3, squeeze=False)
        for row, title in enumerate(titles):
            panels = (iframes[row], flow_to_rgb(mv[row], scale), residual_to_rgb(residual[row]))
            for col, image in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(image, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
            axes[row, 0].set_ylabel(title)
        axes[0, 0].set_title("I-frame")
        axes[0, 1].set_title(f"{kind}motion (full colour: {scale:.0f} px)")
        axes[0, 2].set_title(f"{kind}residual")
        legend = axes[0, 1].inset_axes((0.78, 0.62, 0.2, 0.36))
        legend.imshow(wheel_legend(), interpolation="bilinear")
        legend.set_axis_off()
    return fig
