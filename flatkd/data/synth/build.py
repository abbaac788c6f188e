"""Writing the synthetic dataset to disk: encoded clips in a UCF-101 layout plus split lists.

Layout (the same loader serves it and UCF-101)::

    DIR/synth.json                                   settings the set was made with
    DIR/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi     canonical MPEG-4 (GOP 12, P-only)
    DIR/splits/classInd.txt                          "1 RedSlideSteady" ... (1-based)
    DIR/splits/trainlist0{1,2,3}.txt                 "<Class>/v_..._gGG_cCC.avi <label>"
    DIR/splits/testlist0{1,2,3}.txt                  "<Class>/v_..._gGG_cCC.avi"

Each split holds out a block of ``test_fraction`` (default 30%) of the groups of every class for
testing (UCF-101's splits hold out groups 1-7, 8-14 and 15-21 of 25); the blocks of splits 1, 2
and 3 follow each other (cyclically).

Determinism: a group's scene is drawn from ``SeedSequence(seed, spawn_key=(class, group))`` and a
clip from ``SeedSequence(seed, spawn_key=(class, group, clip))``, so every file depends only on
the settings and its own name, never on the number of worker processes or the order they finish
in, and the single-threaded encoder turns the same frames into the same bytes.

Resuming: the settings are written first; a clip file appears atomically once encoded, so a rerun
with the same settings skips the clips that exist and the split lists (written last) mark a
complete set. A rerun with different settings into the same directory is refused.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from flatkd.codec.encode import EncodeSettings, encode_frames
from flatkd.data.claim import claim_directory
from flatkd.data.lists import held_out_groups
from flatkd.data.parallel import run_jobs
from flatkd.data.splits import write_ucf101
from flatkd.data.synth.design import DESIGNS, ClassSpec, class_table
from flatkd.data.synth.render import Knobs, make_scene, render_clip
from flatkd.data.synth.render_families import FamilyKnobs, render_family_clip
from flatkd.errors import ConfigError
from flatkd.progress import ProgressFactory, no_progress

log = logging.getLogger(__name__)

SETTINGS_FILE = "synth.json"
NUM_SPLITS = 3
SUFFIXES = (".avi", ".mp4")


@dataclass(frozen=True)
class SynthSettings:
    """Size and difficulty of the synthetic set.

    Attributes:
        classes: number of classes (even, 4 to 10; see :mod:`flatkd.data.synth.design`).
        design: ``families`` (default; modalities that each see most of the class) or
            ``factorial`` (flatkd 0.1's design: each modality sees one factor).
        clips_per_class: clips of each class.
        clips_per_group: clips sharing a scene (a UCF-style group ``gNN``).
        frames: frames per clip (a GOP is 12 frames).
        width, height: frame size in pixels (even; multiples of 16 avoid partial macroblocks).
        difficulty: 0 (clean) to 1 (hard): noise, clutter, camera pan, hue jitter, weaker cues.
        seed: the same seed gives byte-identical files.
        suffix: container, ``.avi`` or ``.mp4``.
        test_fraction: share of every class's groups each split holds out for testing.
    """

    classes: int = 10
    design: str = "families"
    clips_per_class: int = 30
    clips_per_group: int = 3
    frames: int = 48
    width: int = 128
    height: int = 128
    difficulty: float = 0.5
    seed: int = 0
    suffix: str = ".avi"
    test_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ConfigError(f"design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        class_table(self.classes, self.design)  # validates the class count
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.clips_per_group < 1:
            raise ConfigError(f"clips_per_group must be >= 1, got {self.clips_per_group}")
        if self.groups < 2:
            raise ConfigError(
                f"clips_per_class ({self.clips_per_class}) must span at least 2 groups of "
                f"{self.clips_per_group} clips, so that each split has training and test clips"
            )
        if self.frames < 2:
            raise ConfigError(f"frames must be >= 2 (an I-frame and a P-frame), got {self.frames}")
        EncodeSettings(width=self.width, height=self.height)  # validates the frame size
        if not 0.0 <= self.difficulty <= 1.0:
            raise ConfigError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.suffix not in SUFFIXES:
            raise ConfigError(f"suffix must be one of {', '.join(SUFFIXES)}, got {self.suffix!r}")

    @property
    def groups(self) -> int:
        """Groups per class."""
        return math.ceil(self.clips_per_class / self.clips_per_group)


def clip_name(spec: ClassSpec, group: int, clip: int, suffix: str) -> str:
    """The UCF-style relative path ``<Class>/v_<Class>_g<GG>_c<CC><suffix>`` (1-based numbers)."""
    return f"{spec.name}/v_{spec.name}_g{group:02d}_c{clip:02d}{suffix}"


def _group_clips(settings: SynthSettings, group: int) -> list[int]:
    """1-based clip numbers of ``group`` (the last group may be short)."""
    first = (group - 1) * settings.clips_per_group
    return list(range(1, min(settings.clips_per_group, settings.clips_per_class - first) + 1))


def _write_group(settings: SynthSettings, videos: Path, class_index: int, group: int) -> int:
    """Render and encode the missing clips of one group; returns how many clips it holds."""
    spec = class_table(settings.classes, settings.design)[class_index]
    knobs = Knobs.from_difficulty(settings.difficulty)
    scene_rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(class_index, group)))
    scene = make_scene(scene_rng, settings.width, settings.height, settings.frames, knobs)
    if settings.design == "families":
        family_knobs = FamilyKnobs.from_difficulty(settings.difficulty)
        render = partial(render_family_clip, knobs=family_knobs)
    else:
        render = partial(render_clip, knobs=knobs)
    encode = EncodeSettings(width=settings.width, height=settings.height)
    clips = _group_clips(settings, group)
    for clip in clips:
        path = videos / clip_name(spec, group, clip, settings.suffix)
        if path.exists():
            continue
        seed = np.random.SeedSequence(settings.seed, spawn_key=(class_index, group, clip))
        frames = render(
            spec, scene, np.random.default_rng(seed), width=settings.width, height=settings.height,
            frames=settings.frames,
        )  # fmt: skip
        encode_frames(frames, path, encode)
    return len(clips)


def _write_splits(settings: SynthSettings, out: Path) -> None:
    table = class_table(settings.classes, settings.design)
    splits = []
    for split in range(1, NUM_SPLITS + 1):
        held_out = held_out_groups(settings.groups, split, settings.test_fraction)
        train, test = [], []
        for spec in table:
            for group in range(1, settings.groups + 1):
                names = [clip_name(spec, group, clip, settings.suffix) for clip in _group_clips(settings, group)]
                (test if group in held_out else train).extend(names)
        splits.append((train, test))
    write_ucf101(out / "splits", [spec.name for spec in table], splits)


def generate_synthetic(
    out: str | os.PathLike[str],
    settings: SynthSettings = SynthSettings(),
    *,
    jobs: int | None = None,
    progress: ProgressFactory = no_progress,
) -> Path:
    """Write the synthetic dataset to ``out`` (see the module docstring); returns ``out``.

    ``jobs`` worker processes render and encode groups in parallel (default: all CPUs; 1 runs in
    this process). Clips already present are kept, so an interrupted run can simply be repeated.
    """
    out = Path(out)
    claim_directory(out, SETTINGS_FILE, asdict(settings), "a synthetic dataset")
    videos = out / "videos"
    tasks = [(c, g) for c in range(settings.classes) for g in range(1, settings.groups + 1)]
    jobs = min(jobs or os.cpu_count() or 1, len(tasks))
    total = settings.classes * settings.clips_per_class
    with progress(total=total, desc="synth") as bar:
        for clips in run_jobs(_write_group, [(settings, videos, c, g) for c, g in tasks], jobs):
            bar.update(clips)
    _write_splits(settings, out)
    log.info("synthetic set: %d clips of %d classes in %s", total, settings.classes, out)
    return out
