"""The class designs of the synthetic compressed-action dataset.

Every clip shows one textured, greyish object (the "actor") moving in a cluttered scene filmed by
a panning camera, next to two coloured landmarks fixed in the scene. Two class designs exist:

``families`` (the default): shaped like real compressed video
=============================================================

On UCF-101 each of CoViAR's three networks sees most of the class (I-frame 87%, MV 70%, residual
80%, fused 90.5%) and they disagree on a minority of clips; the ``families`` design has that
information structure. ``N`` classes (even, 4 to 10) are ``N / 2`` *families* of two *members*:

* the **family** is visible to every modality: its motion pattern (``Slide``: back and forth
  horizontally, ``Rise``: vertically, ``Diagonal``: along one of the diagonals, ``Hop``:
  horizontally in hops, ``Spin``: turning in place; seen by motion vectors, and by residuals at
  the moving edges), its actor shape (disc, square, triangle, bar, cross; seen in I-frames and as
  residual edges) and the hue of its landmarks (Red, Lime, Jade, Azure, Violet; I-frames). Every
  motion is its own mirror image (a diagonal family that told ``↘`` from ``↙`` would be undone by
  the training flips), and all but ``Spin`` translate the actor as a whole, which is what block
  motion vectors see; a turning or zooming small actor leaves 16 x 16 macroblocks nearly
  motionless, so only one family does that (the first version of this design had two, ``Spin``
  and the zoom ``Pulse``, which motion vectors could not tell apart: MV network 37%);
* the **member** (``Calm`` or ``Brisk``) is expressed redundantly, at a different strength in
  each modality, through one latent per clip, ``x = ±1 + shared_jitter * e`` (member 0: -1,
  member 1: +1; ``e`` standard normal, the same for all modalities: an ambiguous clip is ambiguous
  for all of them, as a blurry or half-visible action is in real video): the landmarks' shade
  (value ``0.72 + 0.2 * x_I``: deep for Calm, pale for Brisk; I-frames), the actor's speed
  (``x 2^(0.75 x_M)``: slow or fast; motion vectors) and a flicker of its grey shading (amplitude
  ``∝ max(0, (1 + x_R) / 2)``: steady or flickering; residuals, as block motion cannot explain a
  brightness change). ``x_I, x_M, x_R`` are ``x`` plus independent noise of a modality-specific
  size (``Knobs``), clipped to ``±1.6`` (so speeds and flicker stay in range): this private part
  is what late fusion gains from, the shared part is what makes the networks err on the same
  clips (their agreement);
* **nuisances shared by the modalities**: actor scale (per group and per clip), a speed jitter,
  camera pans, a static occluder hiding part of the scene in some clips, clutter, sensor noise.

So every modality can in principle name the class, and a cross-modal teacher carries information
about the student's class: what knowledge distillation between modality networks needs.

Measured (``analyses/seed_study.py``: the demo's 1200 clips, difficulty 0.5, `cpu-tiny` at 80 px,
600 test clips; 4 runs over training seeds 0-2 and data seeds 0-1): final heads I-frame 82.8%,
MV 45.3%, residual 61.0%, equal late fusion 84.0% (chance 10%); top-class agreement I-frame-MV
45%, I-frame-residual 60%, MV-residual 45%. The I-frame target (about 80%) is met, fusion (85-90%)
nearly, residual (about 65%) is 4 points short, MV (about 55%) 10 points, and only the
I-frame-residual pair reaches the agreement target (>= 60%). The I-frame network names the family
on 99% of the clips, the MV network on about 65% (Diagonal, Hop and Spin are the ones it mixes up),
the residual network on about 80%; the member is right on 72-84% of the clips whose family is.
With 150 clips a class (77 for training) MV reached 53% and residual 72% (one run), so the
networks are data-limited here; the demo's default trades that for its 10-minute budget. The first
version of this design (motions Slide, Rise, Spin, Pulse, Orbit; shapes disc, square, diamond,
ellipse, cross; 1020 clips) gave MV 37%, residual 51% and agreements of 32-44%.

``factorial`` (``--design factorial``; the design of flatkd ≤ 0.1, kept so old results reproduce)
===================================================================================================

A class is fixed by three factors, each of which one modality of the compressed stream sees best:

* **appearance** (I-frames): the hue family of the landmarks (Red, Lime, Jade, Azure, Violet;
  jittered per clip), scene context like a pool or a lawn in UCF-101. They are static in the
  scene, so block motion compensates them exactly and residuals do not see their colour; the
  actor's own colour is random and nearly grey.
* **motion** (motion vectors): how the actor moves relative to the frame: ``Slide``
  (horizontal, bouncing), ``Rise`` (vertical, bouncing), ``Spin`` (rotation about its centre),
  ``Pulse`` (periodic zoom) or ``Orbit`` (circular path).
* **cue** (residuals): a change of the actor's grey shading that block motion cannot explain:
  ``Steady`` (none), ``Flicker`` (fast uniform brightness flicker), ``Wobble`` (a travelling
  warp of the texture, shorter than the blocks can follow), ``Sparkle`` (texture cells re-drawn
  at random every frame) or ``Ripple`` (a brightness band sweeping across the actor, where the
  others' bands stay put). A single frame does not show which cue is running.

With ``N`` classes each factor has ``L = N / 2`` levels, assigned to class ``c`` as

    appearance = c // 2,    motion = ((c + 1) // 2) mod L,    cue = c mod L.

Each level of each factor is shared by exactly two classes, and the three pairings differ (the
appearance pairs are {0,1}, {2,3}, ..., the motion pairs {1,2}, {3,4}, ..., {N-1,0}, the cue pairs
{c, c+L}). So any single modality can at best narrow a clip down to two classes (at most 50%
accuracy against a chance level of 1/N), while any two modalities together identify the class.
Measured: the final heads of two modality networks agreed on their top class on only 21-34% of
the clips and single-teacher KD lowered IC accuracy by up to 21 points: the design forbids
cross-modal distillation, which is why ``families`` replaced it.

Leaks between modalities are kept small in both designs: the hue sits on static landmarks (not on
anything that moves), shading changes are grey (residuals of them carry no hue), the actor's luma
is drawn independently of anything else, and the actor moves by whole pixels so that translations
compensate exactly. The ``difficulty`` setting (0 = clean, 1 = hard) scales the nuisances.

Clips come in groups of a few (like UCF-101's ``gNN`` groups, which share actor and scene): the
clips of a group share the background scene and the actor's size, so a train/test or
train/validation split must keep groups together.

For ``N = 10`` the classes are::

    families:  0 SlideCalm  1 SlideBrisk  2 RiseCalm  3 RiseBrisk  4 DiagonalCalm
               5 DiagonalBrisk  6 HopCalm  7 HopBrisk  8 SpinCalm  9 SpinBrisk
    factorial: 0 RedSlideSteady   1 RedRiseFlicker   2 LimeRiseWobble  3 LimeSpinSparkle
               4 JadeSpinRipple   5 JadePulseSteady  6 AzurePulseFlicker  7 AzureOrbitWobble
               8 VioletOrbitSparkle  9 VioletSlideRipple
"""

from __future__ import annotations

from dataclasses import dataclass

from flatkd.errors import ConfigError

#: Landmark hue families: name and base hue in degrees (72 degrees apart).
APPEARANCES: tuple[tuple[str, float], ...] = (
    ("Red", 0.0),
    ("Lime", 72.0),
    ("Jade", 144.0),
    ("Azure", 216.0),
    ("Violet", 288.0),
)
MOTIONS: tuple[str, ...] = ("Slide", "Rise", "Spin", "Pulse", "Orbit")
#: The motion pattern of each family of the ``families`` design: back and forth along a line
#: (horizontal, vertical, diagonal), hops, or turning in place; each is its own mirror image, as
#: the training flips demand.
FAMILY_MOTIONS: tuple[str, ...] = ("Slide", "Rise", "Diagonal", "Hop", "Spin")
CUES: tuple[str, ...] = ("Steady", "Flicker", "Wobble", "Sparkle", "Ripple")
#: The actor shape of each family of the ``families`` design.
FAMILY_SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "bar", "cross")
#: The two members of a family (latent ``x`` = -1 and +1).
MEMBERS: tuple[str, ...] = ("Calm", "Brisk")

DESIGNS: tuple[str, ...] = ("families", "factorial")
MIN_CLASSES = 4
MAX_CLASSES = 2 * len(MOTIONS)


@dataclass(frozen=True)
class ClassSpec:
    """One synthetic class: its index and what each modality sees of it.

    ``family`` indexes motion, hue and (``families`` design) shape; ``member`` is 0 or 1 in the
    ``families`` design and ``None`` in ``factorial``, where ``cue`` is the residual cue and the
    actor's shape belongs to the group's scene (``shape`` ``None``)."""

    index: int
    name: str
    design: str
    appearance: str
    hue: float
    motion: str
    cue: str | None = None
    shape: str | None = None
    member: int | None = None


def _check_classes(num_classes: int) -> None:
    if num_classes % 2 or not MIN_CLASSES <= num_classes <= MAX_CLASSES:
        raise ConfigError(
            f"the synthetic set needs an even number of classes from {MIN_CLASSES} to {MAX_CLASSES}, "
            f"got {num_classes}"
        )


def _families_table(num_classes: int) -> list[ClassSpec]:
    table = []
    for c in range(num_classes):
        family, member = divmod(c, len(MEMBERS))
        appearance, hue = APPEARANCES[family]
        table.append(
            ClassSpec(
                index=c,
                name=f"{FAMILY_MOTIONS[family]}{MEMBERS[member]}",
                design="families",
                appearance=appearance,
                hue=hue,
                motion=FAMILY_MOTIONS[family],
                shape=FAMILY_SHAPES[family],
                member=member,
            )
        )
    return table


def _factorial_table(num_classes: int) -> list[ClassSpec]:
    levels = num_classes // 2
    table = []
    for c in range(num_classes):
        appearance, hue = APPEARANCES[c // 2]
        motion, cue = MOTIONS[((c + 1) // 2) % levels], CUES[c % levels]
        table.append(
            ClassSpec(
                index=c,
                name=f"{appearance}{motion}{cue}",
                design="factorial",
                appearance=appearance,
                hue=hue,
                motion=motion,
                cue=cue,
            )
        )
    return table


def class_table(num_classes: int, design: str = "families") -> list[ClassSpec]:
    """The ``num_classes`` classes of ``design`` (module docstring), in label order."""
    _check_classes(num_classes)
    if design == "families":
        return _families_table(num_classes)
    if design == "factorial":
        return _factorial_table(num_classes)
    raise ConfigError(f"unknown synthetic design {design!r}: expected one of {', '.join(DESIGNS)}")
