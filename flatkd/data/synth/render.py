"""Rendering synthetic clips as RGB frames (vectorised NumPy, one clip at a time).

A clip is a background *scene* (shared by the clips of a group) seen through a panning camera
(integer offsets, so block motion compensates it exactly), a textured actor composited on top and
two landmarks of the class's colour fixed in the scene, drawn in front. The actor is drawn by
inverse mapping: every pixel of its bounding box is mapped into object coordinates ``(u, v)``
(rotation and scale undone; ``u^2 + v^2 <= 1`` is the unit disc), tested against the shape with a
one-pixel antialiased edge and shaded from textures defined in those coordinates, so everything on
the actor moves, turns and zooms with it and block motion compensation follows it. Its centre moves by
whole pixels, so translations compensate exactly with integer motion vectors.

The actor's colour is nearly grey (random hue, saturation below 0.3) with a BT.601 luma well above
or below the background's, and its shading is grey (the same offset on R, G and B): a smooth random
field (bilinear on a 7 x 7 grid, so that sub-pixel misalignment leaves little residual) plus a
sinusoidal brightness band. The residual cues (see :mod:`flatkd.data.synth.design`) change that
shading over time, each in a way a single frame does not show: ``Flicker`` adds a uniform offset
oscillating every 3-5 frames; ``Wobble`` displaces the texture lookup by a travelling sine wave
8-12 pixels long; ``Sparkle`` re-draws random cells of the texture every frame; ``Ripple`` makes
the band travel across the actor. Sensor noise (uniform, standard deviation from the difficulty)
is added to every frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import hsv_to_rgb

from flatkd.data.synth.design import ClassSpec

SHAPES: tuple[str, ...] = ("disc", "square", "diamond", "ellipse")
#: The actor's grey texture: a random field on a 7 x 7 grid, +-GRAIN levels, upsampled bilinearly.
TEXTURE_CELLS = 7
GRAIN = 22.0
#: Amplitudes (grey levels, times ``Knobs.cue_strength``) of the brightness band every object
#: carries (static, so stills do not reveal Ripple) and of Flicker.
BAND = 12.0
FLICKER = 14.0

#: Landmarks of the class's hue per clip (two, so that a training crop rarely loses both).
LANDMARKS = 2
#: Resolution of the upsampled texture the actor is shaded from (nearest lookup).
TEXTURE_RESOLUTION = 64
#: Standard deviation of bytes read as int8 (uniform on -128..127).
_INT8_STD = math.sqrt((256**2 - 1) / 12)


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean uniform noise with standard deviation ``sigma`` (random bytes, scaled: several
    times faster than ``Generator.normal``; the shape of the distribution does not matter here)."""
    draws = np.frombuffer(rng.bytes(math.prod(shape)), dtype=np.int8).reshape(shape)
    return draws * np.float32(sigma / _INT8_STD)


@dataclass(frozen=True)
class Knobs:
    """Nuisance strengths derived from ``difficulty`` in [0, 1] (0 clean, 1 hard)."""

    noise_sigma: float
    pan_max: float
    clutter: int
    clutter_saturation: float
    hue_jitter: float
    cue_strength: float
    speed: float

    @classmethod
    def from_difficulty(cls, difficulty: float) -> Knobs:
        d = float(difficulty)
        return cls(
            noise_sigma=1.0 + 5.0 * d,
            pan_max=0.25 + 1.25 * d,
            clutter=round(2 + 10 * d),
            clutter_saturation=0.05 + 0.4 * d,
            hue_jitter=4.0 + 14.0 * d,
            cue_strength=1.3 - 0.6 * d,
            speed=1.2 - 0.4 * d,
        )


@dataclass(frozen=True)
class Scene:
    """What the clips of one group share: the background canvas and the object's shape and size."""

    canvas: np.ndarray  # float32 [height + margin, width + margin, 3], values 0..255
    shape: str
    radius: float


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a coarse ``[h, w, C]`` grid to ``[height, width, C]``."""
    gh, gw = grid.shape[:2]
    ys = np.linspace(0.0, gh - 1.0, height)
    xs = np.linspace(0.0, gw - 1.0, width)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x0 + 1] * wx
    bottom = grid[y0 + 1][:, x0] * (1 - wx) + grid[y0 + 1][:, x0 + 1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to the shape's edge in object units (positive inside)."""
    if shape == "disc":
        return 1.0 - np.sqrt(u * u + v * v)
    if shape == "square":
        return 0.82 - np.maximum(np.abs(u), np.abs(v))
    if shape == "diamond":
        return (1.15 - np.abs(u) - np.abs(v)) / math.sqrt(2.0)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.maximum(np.minimum(0.36 - au, 0.95 - av), np.minimum(0.36 - av, 0.95 - au))
    if shape == "triangle":  # equilateral, apothem 0.62
        return 0.62 - np.maximum(np.maximum(-v, 0.866 * u + 0.5 * v), -0.866 * u + 0.5 * v)
    if shape == "bar":
        return np.minimum(1.05 - np.abs(u), 0.42 - np.abs(v))
    return 0.65 * (1.0 - np.sqrt(u * u + (v / 0.65) ** 2))


def _pan_limit(knobs: Knobs, width: int, height: int, frames: int) -> float:
    """Largest camera speed (pixels per frame): ``knobs.pan_max``, but at most 35% of the frame
    over the whole clip, so that the landmark can stay in view."""
    return min(knobs.pan_max, 0.35 * min(width, height) / max(frames - 1, 1))


def make_scene(rng: np.random.Generator, width: int, height: int, frames: int, knobs: Knobs) -> Scene:
    """A muted background (smooth colour field, fine grain, pastel clutter) large enough for the
    camera to pan for ``frames`` frames."""
    margin = math.ceil(_pan_limit(knobs, width, height, frames) * (frames - 1)) + 2
    ch, cw = height + margin, width + margin
    coarse = hsv_to_rgb(
        np.stack(
            [rng.random((5, 5)), rng.uniform(0.05, 0.25, (5, 5)), rng.uniform(0.35, 0.75, (5, 5))], axis=-1
        )
    )
    canvas = _upsample(coarse * 255.0, ch, cw)
    grain = _upsample(rng.normal(0.0, 14.0, (ch // 2, cw // 2, 1)), ch, cw)
    canvas += grain
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    for _ in range(knobs.clutter):
        cy, cx = rng.uniform(0, ch), rng.uniform(0, cw)
        ry, rx = rng.uniform(3, 0.1 * min(width, height), 2)
        colour = hsv_to_rgb([rng.random(), knobs.clutter_saturation, rng.uniform(0.5, 0.95)]) * 255.0
        dy, dx = (yy - cy) / ry, (xx - cx) / rx
        if rng.random() < 0.5:
            mask = np.maximum(np.abs(dy), np.abs(dx)) <= 1.0
        else:
            mask = dy * dy + dx * dx <= 1.0
        canvas[mask] = colour
    radius = rng.uniform(0.15, 0.2) * min(width, height)
    return Scene(canvas=np.clip(canvas, 0, 255), shape=SHAPES[rng.integers(len(SHAPES))], radius=radius)


def _colour_of_luma(hue: float, saturation: float, luma: float) -> np.ndarray:
    """RGB (0..255, float32) of ``hue`` and ``saturation`` scaled to BT.601 luma ``luma`` (what
    the encoder's motion search looks at), chosen independently of the hue."""
    rgb = hsv_to_rgb([hue, saturation, 1.0])
    rgb = rgb * luma / float(np.dot(rgb, [0.299, 0.587, 0.114]))
    return np.clip(rgb, 0.0, 255.0).astype(np.float32)


def _bounce(start: float, velocity: float, low: float, high: float, t: np.ndarray) -> np.ndarray:
    """Positions ``start + velocity * t`` reflected back and forth inside ``[low, high]``."""
    span = high - low
    x = np.mod(start - low + velocity * t, 2 * span)
    return low + span - np.abs(span - x)


@dataclass(frozen=True)
class Trajectory:
    """Per-frame centre (pixels), rotation (radians) and scale of the object."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray


def _trajectory(
    motion: str,
    rng: np.random.Generator,
    radius: float,
    width: int,
    height: int,
    frames: int,
    knobs: Knobs,
    rate: Callable[[float, float], float] | None = None,
) -> Trajectory:
    """The object's path for ``motion`` at ``knobs.speed``; ``rate(low, high)`` draws each rate
    (pixels, degrees per frame, orbit radius) from its range (default: uniformly)."""
    rate = rate or rng.uniform
    t = np.arange(frames, dtype=np.float64)
    pad = 1.35 * radius
    cx = np.full(frames, rng.uniform(pad, width - pad))
    cy = np.full(frames, rng.uniform(pad, height - pad))
    angle = np.full(frames, rng.uniform(0, 2 * math.pi))
    scale = np.ones(frames)
    sign = rng.choice([-1.0, 1.0])
    if motion == "Slide":
        cx = _bounce(cx[0], sign * knobs.speed * rate(1.5, 3.0), pad, width - pad, t)
    elif motion == "Rise":
        cy = _bounce(cy[0], sign * knobs.speed * rate(1.5, 3.0), pad, height - pad, t)
    elif motion == "Spin":
        angle = angle + sign * knobs.speed * math.radians(rate(4.0, 8.0)) * t

    elif motion == "Pulse":
        period = rng.uniform(14.0, 22.0)
        scale = 1.0 + 0.26 * knobs.speed * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
    else:  # Orbit
        rho = min(rate(7.0, 12.0) * knobs.speed, 0.5 * (min(width, height) - 2 * pad))
        phase = 2 * math.pi * t / rng.uniform(14.0, 22.0) * sign + rng.uniform(0, 2 * math.pi)
        # max(): at the cap on rho the two bounds meet, up to rounding
        centre_x = rng.uniform(pad + rho, max(pad + rho, width - pad - rho))
        centre_y = rng.uniform(pad + rho, max(pad + rho, height - pad - rho))
        cx, cy = centre_x + rho * np.cos(phase), centre_y + rho * np.sin(phase)
    # whole-pixel positions: translations then compensate exactly with integer motion vectors
    return Trajectory(cx=np.rint(cx), cy=np.rint(cy), angle=angle, scale=scale)


def _camera(
    rng: np.random.Generator, margin: int, speed_limit: float, frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Integer top-left offsets of the view into the canvas: a constant-velocity pan that stays
    inside the canvas margin."""
    speed = rng.uniform(0.0, speed_limit)
    direction = rng.uniform(0, 2 * math.pi)
    t = np.arange(frames)
    offsets = []
    for velocity in (speed * math.sin(direction), speed * math.cos(direction)):
        travel = velocity * (frames - 1)
        lo, hi = max(0.0, -travel), min(float(margin - 1), margin - 1 - travel)
        offsets.append(np.rint(rng.uniform(lo, max(lo, hi)) + velocity * t).astype(int))
    return offsets[0], offsets[1]


def _landmark(
    rng: np.random.Generator,
    hue: float,
    side: int,
    off_y: np.ndarray,
    off_x: np.ndarray,
    width: int,
    height: int,
    value: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The class's static landmark: a saturated disc or square of radius ``0.1 side`` fixed in
    the scene, placed to stay in view while the camera pans, of HSV ``value`` (default: drawn
    from 0.6-0.95). Returns its colour ``[h, w, 3]``, alpha ``[h, w, 1]`` and its top-left corner
    in the view per frame (y, x)."""
    radius = 0.1 * side
    extent = int(2 * radius) + 3
    yy, xx = np.mgrid[0:extent, 0:extent].astype(np.float32) + 0.5 - extent / 2
    if rng.random() < 0.5:
        inside = radius - np.sqrt(yy * yy + xx * xx)
    else:
        inside = 0.9 * radius - np.maximum(np.abs(yy), np.abs(xx))
    alpha = np.clip(inside + 0.5, 0.0, 1.0)[..., None]
    saturation = rng.uniform(0.65, 0.95)
    value = rng.uniform(0.6, 0.95) if value is None else value
    colour = hsv_to_rgb([hue, saturation, value]).astype(np.float32) * 255.0
    corners = []
    for offsets, size in ((off_y, height), (off_x, width)):
        lo, hi = offsets.max() + 1, offsets.min() + size - extent - 1
        corners.append(int(rng.integers(lo, max(lo, hi) + 1)) - offsets)
    return np.broadcast_to(colour, alpha.shape[:2] + (3,)), alpha, corners[0], corners[1]


def _texture_lookup(fine: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest lookup in the upsampled texture ``fine`` (``R x R``, spanning [-1, 1]^2)."""
    size = fine.shape[0]
    col = np.clip(((u + 1.0) * (0.5 * size)).astype(np.intp), 0, size - 1)
    row = np.clip(((v + 1.0) * (0.5 * size)).astype(np.intp), 0, size - 1)
    return fine.reshape(-1).take(row * size + col)


#: A landmark as :func:`_landmark` returns it: colour, alpha and per-frame corner (y, x).
Mark = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Per-frame grey shading of the actor: ``shade(t, u, v)`` at object coordinates ``u, v``.
Shading = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Layer:
    """A static thing in front of the actor (e.g. an occluder): colour, alpha and per-frame
    top-left corner in the view, like a landmark."""

    colour: np.ndarray
    alpha: np.ndarray
    corner_y: np.ndarray
    corner_x: np.ndarray


def _blend(frame: np.ndarray, colour: np.ndarray, alpha: np.ndarray, y: int, x: int) -> None:
    """Alpha-composite ``colour`` (``[h, w, 3]``) over ``frame`` at top-left ``(y, x)``, in place,
    clipped to the frame."""
    h, w = alpha.shape[:2]
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(frame.shape[0], y + h), min(frame.shape[1], x + w)
    if y1 <= y0 or x1 <= x0:
        return
    patch = frame[y0:y1, x0:x1]
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    patch += a * (colour[y0 - y : y1 - y, x0 - x : x1 - x] - patch)


def composite_clip(
    scene: Scene,
    shape: str,
    radius: float,
    traj: Trajectory,
    camera: tuple[np.ndarray, np.ndarray],
    base: np.ndarray,
    shade: Shading,
    marks: list[Mark],
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    noise_sigma: float,
    layers: tuple[Layer, ...] = (),
) -> Iterator[np.ndarray]:
    """Yield the RGB frames (``[height, width, 3]`` uint8) of the view through ``camera`` into
    ``scene``: the actor of ``shape`` (``radius`` pixels at scale 1) along ``traj``, coloured
    ``base`` plus ``shade``, then ``layers``, then the landmarks ``marks``, then sensor noise."""
    off_y, off_x = camera
    for t in range(len(traj.cx)):
        frame = scene.canvas[off_y[t] : off_y[t] + height, off_x[t] : off_x[t] + width].copy()
        size = radius * traj.scale[t]
        half = 1.3 * size + 2.0
        x0, x1 = max(0, int(traj.cx[t] - half)), min(width, int(traj.cx[t] + half) + 1)
        y0, y1 = max(0, int(traj.cy[t] - half)), min(height, int(traj.cy[t] + half) + 1)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - traj.cy[t]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - traj.cx[t]
        cos, sin = math.cos(traj.angle[t]), math.sin(traj.angle[t])
        u = (cos * xs + sin * ys) / size
        v = (cos * ys - sin * xs) / size
        alpha = np.clip(_inside(shape, u, v) * size + 0.5, 0.0, 1.0)[..., None]
        colour = base + shade(t, u, v)[..., None]
        patch = frame[y0:y1, x0:x1]
        frame[y0:y1, x0:x1] = patch + alpha * (colour - patch)
        for layer in layers:
            _blend(frame, layer.colour, layer.alpha, int(layer.corner_y[t]), int(layer.corner_x[t]))
        for mark, mark_alpha, mark_y, mark_x in marks:
            extent = mark_alpha.shape[0]
            patch = frame[mark_y[t] : mark_y[t] + extent, mark_x[t] : mark_x[t] + extent]
            patch += mark_alpha * (mark - patch)
        frame += _sensor_noise(rng, frame.shape, noise_sigma) + np.float32(0.5)
        yield np.clip(frame, 0, 255, out=frame).astype(np.uint8)


@dataclass(frozen=True)
class ActorLook:
    """The actor's colour and grey texture in one clip: its base RGB, the coarse texture grid
    and the static brightness band (direction, phase, length in object radii)."""

    base: np.ndarray
    texture: np.ndarray
    band_dir: float
    band_phase: float
    band_length: float


def actor_look(rng: np.random.Generator) -> ActorLook:
    """Draw the actor's look: nearly grey (random hue, saturation below 0.3) with a luma well
    above or below the background's, a random 7 x 7 texture, a band of random direction."""
    luma = rng.choice([rng.uniform(65.0, 95.0), rng.uniform(165.0, 195.0)])  # stands out of the background
    base = _colour_of_luma(rng.random(), rng.uniform(0.0, 0.3), luma)
    texture = rng.uniform(-GRAIN, GRAIN, (TEXTURE_CELLS, TEXTURE_CELLS, 1)).astype(np.float32)
    band_dir, band_phase = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    band_length = rng.uniform(0.8, 1.1)
    return ActorLook(base=base, texture=texture, band_dir=band_dir, band_phase=band_phase, band_length=band_length)


def render_clip(
    spec: ClassSpec,
    scene: Scene,
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    frames: int,
    knobs: Knobs,
) -> Iterator[np.ndarray]:
    """Yield the ``frames`` RGB frames (``[height, width, 3]`` uint8) of one clip of class ``spec``
    of the ``factorial`` design."""
    radius = scene.radius
    traj = _trajectory(spec.motion, rng, radius, width, height, frames, knobs)
    margin = scene.canvas.shape[0] - height
    off_y, off_x = _camera(rng, margin, _pan_limit(knobs, width, height, frames), frames)
    hue = (spec.hue + rng.normal(0.0, knobs.hue_jitter)) / 360.0 % 1.0
    marks = [_landmark(rng, hue, min(width, height), off_y, off_x, width, height) for _ in range(LANDMARKS)]
    look = actor_look(rng)
    base, texture = look.base, look.texture
    fine = _upsample(texture, TEXTURE_RESOLUTION, TEXTURE_RESOLUTION)
    strength = knobs.cue_strength
    band_dir, band_phase, band_length = look.band_dir, look.band_phase, look.band_length
    flicker_period = rng.uniform(3.0, 5.0)
    wave_length = rng.uniform(8.0, 12.0)  # pixels
    wave_speed = rng.uniform(0.8, 1.4) * rng.choice([-1.0, 1.0])  # radians per frame

    def shade(t: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        nonlocal fine
        if spec.cue == "Sparkle" and t:
            redraw = rng.random(texture.shape) < 0.1 * strength
            texture[redraw] = rng.uniform(-GRAIN, GRAIN, int(redraw.sum()))
            fine = _upsample(texture, TEXTURE_RESOLUTION, TEXTURE_RESOLUTION)
        tu = u
        if spec.cue == "Wobble":
            shift = 3.0 * strength * np.sin(2 * math.pi * v * radius / wave_length + wave_speed * t)
            tu = u + shift / radius
        grey = _texture_lookup(fine, tu, v)
        along = (u * math.cos(band_dir) + v * math.sin(band_dir)) * (2 * math.pi / band_length)
        band_shift = wave_speed * t if spec.cue == "Ripple" else 0.0
        grey += BAND * strength * np.sin(along + band_phase - band_shift)
        if spec.cue == "Flicker":
            grey += FLICKER * strength * math.sin(2 * math.pi * t / flicker_period + band_phase)
        return grey

    yield from composite_clip(
        scene, scene.shape, radius, traj, (off_y, off_x), base, shade, marks, rng,
        width=width, height=height, noise_sigma=knobs.noise_sigma,
    )  # fmt: skip
