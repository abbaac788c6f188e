"""Split lists from class folders of videos: what ``flatkd data lists`` writes.

Input: ``RAW_DIR/<Class>/<clip><suffix>``, any suffix of :data:`flatkd.naming.VIDEO_SUFFIXES`
(hidden files and files in deeper folders are ignored), or the same below one of the loader's
video folders (``RAW_DIR/videos/<Class>/...``, ``RAW_DIR/UCF-101/...``; the first of
:data:`flatkd.data.splits.VIDEO_DIRS` that holds any). Every folder holding videos is a class;
labels follow the sorted folder names.

Groups: clips cut from one source form a group (:func:`flatkd.naming.clip_group`: the ``group``
pattern, default UCF-101's ``_(g\\d+)_c\\d+$``, else HMDB-51's source movie, else the file alone).
Whole groups go to training or testing, never both, so no source leaks.

Assignment, per class: its groups, sorted by name, are shuffled by a generator seeded with
``(seed, label)``; split ``N`` holds out the ``N``-th block of ``round(test_fraction * groups)``
groups of that order for testing (at least one, and at least one left to train; blocks follow each
other cyclically, as UCF-101's splits hold out groups 1-7, 8-14 and 15-21 of 25). The result
depends only on the file names, the settings and the seed.

Output, in UCF-101's format (:func:`flatkd.data.splits.write_ucf101`), under ``RAW_DIR/splits``
where ``flatkd data cache RAW_DIR`` and ``train --data RAW_DIR`` find it: ``classInd.txt``,
``trainlist0N.txt``, ``testlist0N.txt`` and ``lists.json`` (the settings, whose ``group`` pattern
the split loader then uses for the validation carve too).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flatkd.data.splits import LISTS_FILE, SPLITS, VIDEO_DIRS, write_ucf101
from flatkd.errors import ConfigError, InputFileError
from flatkd.fileio import write_json
from flatkd.naming import UCF_GROUP_PATTERN, clip_group, group_pattern, is_video, video_key

LISTS_DIR = "splits"


def held_out_groups(groups: int, split: int, fraction: float = 0.3) -> set[int]:
    """The 1-based groups held out for testing in ``split`` (1, 2, ...): a block of ``fraction``
    of them (at least one, and at least one left for training)."""
    block = min(groups - 1, max(1, round(groups * fraction)))
    return {((split - 1) * block + i) % groups + 1 for i in range(block)}


@dataclass(frozen=True)
class ListsSummary:
    """What :func:`make_lists` wrote.

    Attributes:
        splits_dir: the folder of the lists.
        classes: class names in label order.
        clips, groups: videos and source groups in all classes.
        train, test: clips of each split's training and test list.
        test_groups: groups held out in each split.
        warnings: lines for the user (clips whose group the pattern did not find).
    """

    splits_dir: Path
    classes: tuple[str, ...]
    clips: int
    groups: int
    train: tuple[int, ...]
    test: tuple[int, ...]
    test_groups: tuple[int, ...]
    warnings: tuple[str, ...]


def _classes_in(folder: Path) -> dict[str, list[str]]:
    """Sub-folder name -> sorted file names of its videos, for the sub-folders that hold any."""
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        names = sorted(p.name for p in sub.iterdir() if p.is_file() and is_video(p) and not p.name.startswith("."))
        if names:
            found[sub.name] = names
    return found


def _class_videos(raw_dir: Path) -> tuple[Path, dict[str, list[str]]]:
    """The folder of the class folders (module docstring) and, per class, its videos' names."""
    if not raw_dir.is_dir():
        raise InputFileError(f"{raw_dir}: no such folder")
    for name in VIDEO_DIRS:
        folder = raw_dir / name
        found = _classes_in(folder) if folder.is_dir() else {}
        if found:
            break
    else:
        raise InputFileError(
            f"{raw_dir}: no class folders with videos (expected {raw_dir}/<Class>/<clip>.avi, .mp4, .mpg, ..., "
            f"or the same in {raw_dir}/videos)"
        )
    for class_name, names in found.items():
        for name in [class_name, *names]:
            if any(c.isspace() for c in name):
                raise InputFileError(
                    f"{folder / class_name}: {name!r} has white space, which split lists cannot hold; rename it"
                )
        keys = Counter(video_key(name) for name in names)
        twice = sorted(k for k, n in keys.items() if n > 1)
        if twice:
            raise InputFileError(
                f"{folder / class_name}: {twice[0]} exists with two suffixes (one cache key); keep one of them"
            )
    return folder, found


def _check_free(splits_dir: Path, force: bool) -> None:
    """Refuse to replace lists unless ``force``; with it, remove every old list."""
    old = [
        p for p in (splits_dir.glob("*.txt") if splits_dir.is_dir() else [])
        if p.name == "classInd.txt" or p.name.startswith(("trainlist", "testlist"))
    ]  # fmt: skip
    if old and not force:
        raise ConfigError(f"{splits_dir}: split lists exist already; pass --force to replace them")
    for path in old:
        path.unlink()


def _warning(kinds: Counter[str], clips: int, pattern: str) -> tuple[str, ...]:
    """A line about the clips the group pattern did not match, if any."""
    missed = kinds["movie"] + kinds["file"]
    if not missed:
        return ()
    return (
        f"{missed} of {clips} clips match no --group pattern {pattern!r}: {kinds['movie']} grouped by "
        f"HMDB-51 source movie (<movie>_<Class>_...), {kinds['file']} each a group of its own; clips of one "
        "source may then leak between training and test (name them ..._gNN_cNN or pass --group)",
    )


def make_lists(
    raw_dir: str | os.PathLike[str],
    *,
    splits: int = 3,
    test_fraction: float = 0.3,
    seed: int = 0,
    group: str = UCF_GROUP_PATTERN,
    force: bool = False,
) -> ListsSummary:
    """Write split lists for the class folders of ``raw_dir`` (see the module docstring).

    Raises :class:`InputFileError` for no class folders, a class of a single group (it cannot
    be split), names the lists cannot hold; :class:`ConfigError` for bad settings or existing
    lists without ``force``. Nothing is written before all checks pass.
    """
    if splits not in SPLITS:
        raise ConfigError(f"splits must be 1 to {len(SPLITS)}, got {splits}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pattern = group_pattern(group)
    raw_dir = Path(raw_dir)
    videos_dir, videos = _class_videos(raw_dir)
    kinds: Counter[str] = Counter()
    buckets: dict[str, dict[str, list[str]]] = {}
    for class_name, names in videos.items():
        buckets[class_name] = defaultdict(list)
        for name in names:
            entry = f"{class_name}/{name}"
            found = clip_group(name, class_name, pattern)
            kinds[found.rule] += 1
            buckets[class_name][found.name or video_key(entry)].append(entry)
        if len(buckets[class_name]) < 2:
            raise InputFileError(
                f"{videos_dir / class_name}: all {len(names)} clips are one group "
                f"({next(iter(buckets[class_name]))}), so it cannot be split between training and test; "
                "add clips of another source or pass a --group pattern that tells them apart"
            )
    splits_dir = raw_dir / LISTS_DIR
    _check_free(splits_dir, force)
    written, held = [], []
    for split in range(1, splits + 1):
        train, test, test_groups = [], [], 0
        for label, by_group in enumerate(buckets.values()):
            names = sorted(by_group)
            order = np.random.default_rng([seed, label]).permutation(len(names))
            out = {names[order[i - 1]] for i in held_out_groups(len(names), split, test_fraction)}
            test_groups += len(out)
            for name in names:
                (test if name in out else train).extend(by_group[name])
        written.append((train, test))
        held.append(test_groups)
    settings = {"splits": splits, "test_fraction": test_fraction, "seed": seed, "group": group}
    write_json(splits_dir / LISTS_FILE, settings)  # first: lists never stand without their pattern
    write_ucf101(splits_dir, list(videos), written)
    clips = sum(len(names) for names in videos.values())
    return ListsSummary(
        splits_dir=splits_dir,
        classes=tuple(videos),
        clips=clips,
        groups=sum(len(b) for b in buckets.values()),
        train=tuple(len(train) for train, _ in written),
        test=tuple(len(test) for _, test in written),
        test_groups=tuple(held),
        warnings=_warning(kinds, clips, group),
    )
