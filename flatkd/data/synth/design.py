"""The class design of the synthetic compressed-action dataset.

Every clip shows one textured, greyish object (the "actor") moving in a cluttered scene filmed by
a panning camera, next to two coloured landmarks fixed in the scene. A class is fixed by three
factors, each of which one modality of the compressed stream sees best:

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

With ``N`` classes (even, 4 to 10) each factor has ``L = N / 2`` levels, assigned to class ``c`` as

    appearance = c // 2,    motion = ((c + 1) // 2) mod L,    cue = c mod L.

Each level of each factor is shared by exactly two classes, and the three pairings differ (the
appearance pairs are {0,1}, {2,3}, ..., the motion pairs {1,2}, {3,4}, ..., {N-1,0}, the cue pairs
{c, c+L}). So any single modality can at best narrow a clip down to two classes (at most 50%
accuracy against a chance level of 1/N), while any two modalities together identify the class:
each modality carries information and none suffices. Leaks between modalities are kept small on
purpose: the hue sits on static landmarks (not on anything that moves), shading changes are grey
(residuals of them carry no hue), the actor's luma is drawn independently of anything else, and
the actor moves by whole pixels so that translations compensate exactly. Scene clutter (pastel
shapes), camera pans, sensor noise and per-clip jitter of every parameter make each factor
imperfect on its own; the ``difficulty`` setting (0 = clean, 1 = hard) scales them.

Measured with the linear probe of :mod:`flatkd.data.sanity` on the default set (10 classes, 30
clips each, difficulty 0.5, split 1 test list; seeds 0, 1, 2): I-frames 30-44%, motion vectors
40-48%, residuals 46-50%, the three fused (late fusion) 72-79%, chance 10%. Networks trained on
each modality see more than this probe; what leaks between modalities (residuals do show motion
boundaries, motion vectors react to some cues) lets a single modality pass 50%, but not the fused
accuracy.

Clips come in groups of a few (like UCF-101's ``gNN`` groups, which share actor and scene): the
clips of a group share the background scene and the object's shape and size, so a train/test or
train/validation split must keep groups together.

For ``N = 10`` the classes are::

     0 RedSlideSteady      5 JadePulseSteady
     1 RedRiseFlicker      6 AzurePulseFlicker
     2 LimeRiseWobble      7 AzureOrbitWobble
     3 LimeSpinSparkle     8 VioletOrbitSparkle
     4 JadeSpinRipple      9 VioletSlideRipple
"""

from __future__ import annotations

from dataclasses import dataclass

from flatkd.errors import ConfigError

#: Appearance levels: name and base hue in degrees (72 degrees apart).
APPEARANCES: tuple[tuple[str, float], ...] = (
    ("Red", 0.0),
    ("Lime", 72.0),
    ("Jade", 144.0),
    ("Azure", 216.0),
    ("Violet", 288.0),
)
MOTIONS: tuple[str, ...] = ("Slide", "Rise", "Spin", "Pulse", "Orbit")
CUES: tuple[str, ...] = ("Steady", "Flicker", "Wobble", "Sparkle", "Ripple")

MIN_CLASSES = 4
MAX_CLASSES = 2 * len(MOTIONS)


@dataclass(frozen=True)
class ClassSpec:
    """One synthetic class: its index, name and the level of each factor."""

    index: int
    appearance: str
    hue: float
    motion: str
    cue: str

    @property
    def name(self) -> str:
        """CamelCase class name, e.g. ``RedSlideSteady`` (UCF-101 style, no separators)."""
        return f"{self.appearance}{self.motion}{self.cue}"


def class_table(num_classes: int) -> list[ClassSpec]:
    """The ``num_classes`` classes of the design above, in label order."""
    if num_classes % 2 or not MIN_CLASSES <= num_classes <= MAX_CLASSES:
        raise ConfigError(
            f"the synthetic set needs an even number of classes from {MIN_CLASSES} to {MAX_CLASSES}, "
            f"got {num_classes}"
        )
    levels = num_classes // 2
    table = []
    for c in range(num_classes):
        appearance, hue = APPEARANCES[c // 2]
        table.append(
            ClassSpec(
                index=c,
                appearance=appearance,
                hue=hue,
                motion=MOTIONS[((c + 1) // 2) % levels],
                cue=CUES[c % levels],
            )
        )
    return table
