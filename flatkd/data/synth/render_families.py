"""Rendering clips of the ``families`` class design (:mod:`flatkd.data.synth.design`).

The scene, camera, actor compositing, landmarks and sensor noise are those of
:mod:`flatkd.data.synth.render`; what differs is what the class fixes and what varies per clip.

Per clip, one latent ``x = (2 member - 1) + shared_jitter * e`` (``e ~ N(0, 1)``) is drawn, and each
modality's cue reads it with its own independent noise, ``x_k = clip(x + private_k * e_k, -1.6, 1.6)``:

* landmark shade (I-frames): HSV value ``clip(0.72 + 0.2 x_I, 0.35, 1)`` of the family's hue;
* actor speed (motion vectors): the motion's rates times ``2^(0.75 x_M)`` times a shared speed
  jitter ``2^(speed_jitter * e_s)`` (the same for motion vectors and residuals);
* shading flicker (residuals): a uniform grey offset ``1.5 FLICKER * clip((1 + x_R) / 2, 0, 1.5)
  * sin(2 pi t / P)`` with a period ``P`` of 3-5 frames, which block motion cannot predict.

The actor's path is the family's motion (:func:`_family_trajectory`), its shape the family's;
its size is the group's times ``actor_scale`` times a per-clip factor
``2^U(-scale_jitter, scale_jitter)``. With probability ``occluder_rate`` a static grey bar (a pole
or a beam, 18-30% of the frame) stands in front of the actor, hiding part of it in every modality.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.colors import hsv_to_rgb

from flatkd.data.synth.design import ClassSpec
from flatkd.data.synth.render import (
    BAND,
    FLICKER,
    LANDMARKS,
    TEXTURE_RESOLUTION,
    Knobs,
    Layer,
    Scene,
    Trajectory,
    actor_look,
    _bounce,
    _camera,
    _landmark,
    _pan_limit,
    _texture_lookup,
    _trajectory,
    _upsample,
    composite_clip,
)

#: Landmark value (HSV) at ``x = 0`` and its change per unit of ``x``.
SHADE_CENTRE, SHADE_SLOPE = 0.72, 0.2
#: log2 of the speed factor per unit of ``x``, and the flicker amplitude relative to the
#: factorial design's ``Flicker`` cue.
SPEED_SLOPE, FLICKER_GAIN = 0.75, 1.5
#: Each modality's reading of the member latent is clipped to +-READING_LIMIT (cues stay in range).
READING_LIMIT = 1.6


@dataclass(frozen=True)
class FamilyKnobs:
    """What ``difficulty`` in [0, 1] sets for the ``families`` design: the shared nuisances of
    :class:`~flatkd.data.synth.render.Knobs` plus the member latent's shared and private noise.

    ``private`` is the noise of each modality's reading of the member latent, in units of the
    member separation's half (the members sit at ``x = -1`` and ``+1``)."""

    base: Knobs
    actor_scale: float
    shared_jitter: float
    private: dict[str, float]
    speed_jitter: float
    scale_jitter: float
    occluder_rate: float
    rate_spread: float

    @classmethod
    def from_difficulty(cls, difficulty: float) -> FamilyKnobs:
        d = float(difficulty)
        base = Knobs.from_difficulty(d)
        return cls(
            # a larger actor, faster motion and a slower pan than the factorial design: the motion
            # pattern must stay legible in 16 x 16 macroblock motion vectors at small frame sizes
            base=replace(base, speed=1.3 * base.speed, pan_max=0.5 * base.pan_max),
            actor_scale=1.15,
            shared_jitter=0.3 + 1.2 * d,
            private={"iframe": 0.2 + 0.6 * d, "mv": 0.2 + 0.6 * d, "residual": 0.15 + 0.4 * d},
            speed_jitter=0.05 + 0.2 * d,
            scale_jitter=0.1 + 0.3 * d,
            occluder_rate=0.5 * d,
            rate_spread=0.2,
        )


def _occluder(
    rng: np.random.Generator, off_y: np.ndarray, off_x: np.ndarray, width: int, height: int
) -> Layer:
    """A static muted bar fixed in the scene: a vertical pole or a horizontal beam across the
    view, 18-30% of the frame thick, with a one-pixel soft edge."""
    vertical = rng.random() < 0.5
    across, along = (width, height) if vertical else (height, width)
    thickness = int(rng.uniform(0.18, 0.3) * across)
    start = int(rng.integers(0, across - thickness))
    colour = hsv_to_rgb([rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.8)]) * 255.0
    shape = (along, thickness) if vertical else (thickness, along)
    colour_plane = np.broadcast_to(colour.astype(np.float32), shape + (3,))
    alpha = np.ones(shape + (1,), np.float32)
    offsets = off_x if vertical else off_y
    corner = start + int(offsets[0]) - offsets  # fixed in the scene: moves against the pan
    zeros = np.zeros_like(offsets)
    corner_y, corner_x = (zeros, corner) if vertical else (corner, zeros)
    return Layer(colour=colour_plane, alpha=alpha, corner_y=corner_y, corner_x=corner_x)


#: Directions (degrees, image axes: y points down) of the families' back-and-forth motions, one
#: drawn per clip; each set is closed under the horizontal flip of training.
LINE_MOTIONS = {"Slide": (0.0,), "Rise": (90.0,), "Diagonal": (45.0, 135.0)}
#: Height of ``Hop``'s hops (fraction of the frame) and their period range (frames at speed 1).
HOP_HEIGHT, HOP_PERIOD = 0.22, (8.0, 12.0)


def _line(
    rng: np.random.Generator, theta: float, pad: float, width: int, height: int, travel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(x, y)`` of a walk of ``travel`` pixels (per frame, cumulative) along the line at
    angle ``theta`` through a point near the frame's middle (within 12% of its side), from a
    random point of the line and reflected at the frame's edges less ``pad``."""
    direction = np.array([math.cos(theta), math.sin(theta)])
    anchor = np.array([width / 2, height / 2]) + rng.uniform(-0.12, 0.12, 2) * min(width, height)
    low, high = -math.inf, math.inf
    for axis, extent in enumerate((width, height)):
        if abs(direction[axis]) > 1e-9:
            ends = sorted(((pad - anchor[axis]) / direction[axis], (extent - pad - anchor[axis]) / direction[axis]))
            low, high = max(low, ends[0]), min(high, ends[1])
    along = _bounce(rng.uniform(low, high), 1.0, low, high, travel)
    return anchor[0] + along * direction[0], anchor[1] + along * direction[1]


def _family_trajectory(
    motion: str,
    rng: np.random.Generator,
    radius: float,
    width: int,
    height: int,
    frames: int,
    knobs: Knobs,
    rate: Callable[[float, float], float],
) -> Trajectory:
    """The actor's path: back and forth along a line through the middle of the frame at one of
    the motion's angles (:data:`LINE_MOTIONS`), at ``knobs.speed`` times ``rate(1.5, 3)`` pixels
    per frame and reflected at the frame's padded edges; ``Hop``: that horizontal travel with
    hops of :data:`HOP_HEIGHT` of the frame every ``HOP_PERIOD / speed`` frames; ``Spin``: the
    factorial design's rotation in place. A line motion keeps its axis over the whole clip (block
    motion vectors point along it in every frame)."""
    if motion not in LINE_MOTIONS and motion != "Hop":
        return _trajectory(motion, rng, radius, width, height, frames, knobs, rate)
    pad = 1.35 * radius
    t = np.arange(frames, dtype=np.float64)
    travel = rng.choice([-1.0, 1.0]) * knobs.speed * rate(1.5, 3.0) * t
    theta = math.radians(rng.choice(LINE_MOTIONS.get(motion, (0.0,))))
    cx, cy = _line(rng, theta, pad, width, height, travel)
    if motion == "Hop":
        hop = min(HOP_HEIGHT * height, height - 2 * pad)
        period = rng.uniform(*HOP_PERIOD) / max(knobs.speed, 0.25)
        ground = rng.uniform(pad + hop, max(pad + hop, height - pad))
        cy = ground - hop * np.abs(np.sin(math.pi * t / period + rng.uniform(0, math.pi)))
    angle = np.full(frames, rng.uniform(0, 2 * math.pi))
    # whole-pixel positions: translations then compensate exactly with integer motion vectors
    return Trajectory(cx=np.rint(cx), cy=np.rint(cy), angle=angle, scale=np.ones(frames))


def member_readings(spec: ClassSpec, rng: np.random.Generator, knobs: FamilyKnobs) -> dict[str, float]:
    """The member latent of one clip as each modality's cue reads it (module docstring)."""
    assert spec.member is not None, "a class of the families design"
    latent = (2.0 * spec.member - 1.0) + knobs.shared_jitter * rng.standard_normal()
    return {
        m: float(np.clip(latent + sigma * rng.standard_normal(), -READING_LIMIT, READING_LIMIT))
        for m, sigma in knobs.private.items()
    }


def render_family_clip(
    spec: ClassSpec,
    scene: Scene,
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    frames: int,
    knobs: FamilyKnobs,
) -> Iterator[np.ndarray]:
    """Yield the ``frames`` RGB frames (``[height, width, 3]`` uint8) of one clip of class ``spec``
    of the ``families`` design."""
    assert spec.shape is not None, "a class of the families design"
    reading = member_readings(spec, rng, knobs)
    speed = knobs.base.speed * 2.0 ** (SPEED_SLOPE * reading["mv"] + knobs.speed_jitter * rng.standard_normal())
    radius = knobs.actor_scale * scene.radius * 2.0 ** rng.uniform(-knobs.scale_jitter, knobs.scale_jitter)
    spread = knobs.rate_spread

    def rate(low: float, high: float) -> float:
        middle, half = (low + high) / 2, (high - low) / 2 * spread
        return rng.uniform(middle - half, middle + half)

    traj = _family_trajectory(spec.motion, rng, radius, width, height, frames, replace(knobs.base, speed=speed), rate)
    margin = scene.canvas.shape[0] - height
    off_y, off_x = _camera(rng, margin, _pan_limit(knobs.base, width, height, frames), frames)
    hue = (spec.hue + rng.normal(0.0, knobs.base.hue_jitter)) / 360.0 % 1.0
    value = float(np.clip(SHADE_CENTRE + SHADE_SLOPE * reading["iframe"], 0.35, 1.0))
    side = min(width, height)
    marks = [_landmark(rng, hue, side, off_y, off_x, width, height, value=value) for _ in range(LANDMARKS)]
    look = actor_look(rng)
    fine = _upsample(look.texture, TEXTURE_RESOLUTION, TEXTURE_RESOLUTION)
    strength = knobs.base.cue_strength
    flicker_period = rng.uniform(3.0, 5.0)
    flicker = FLICKER_GAIN * FLICKER * strength * float(np.clip((1.0 + reading["residual"]) / 2.0, 0.0, 1.5))
    layers = (_occluder(rng, off_y, off_x, width, height),) if rng.random() < knobs.occluder_rate else ()

    def shade(t: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        grey = _texture_lookup(fine, u, v)
        along = (u * math.cos(look.band_dir) + v * math.sin(look.band_dir)) * (2 * math.pi / look.band_length)
        grey += BAND * strength * np.sin(along + look.band_phase)
        return grey + flicker * math.sin(2 * math.pi * t / flicker_period + look.band_phase)

    yield from composite_clip(
        scene, spec.shape, radius, traj, (off_y, off_x), look.base, shade, marks, rng,
        width=width, height=height, noise_sigma=knobs.base.noise_sigma, layers=layers,
    )  # fmt: skip
