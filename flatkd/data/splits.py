"""Split lists of UCF-101 and HMDB-51 (and the synthetic set, which uses UCF-101's format).

UCF-101 (``ucfTrainTestlist/`` of the official download)::

    classInd.txt        "1 ApplyEyeMakeup"                          (1-based class indices)
    trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

HMDB-51 (``testTrainMulti_7030_splits/``): one file per class and split,
``<class>_test_split<N>.txt``, with lines ``"<file>.avi <id>"``, id 0 = unused, 1 = train,
2 = test; the videos lie in ``<videos>/<class>/<file>.avi``; labels follow the sorted class names.

A sample's ``video`` is its list entry without the container suffix (``Class/v_..._g08_c01``,
:func:`flatkd.naming.video_key`): the key of its entry in the modality cache. Its ``group``
keeps clips cut from one source together when a validation set is carved out of the training list
(:mod:`flatkd.data.validation`), by :func:`flatkd.naming.clip_group`: UCF-101's ``gNN`` (clips
of one group share actor and scene), else HMDB-51's source-movie prefix (the file name up to
``_<class>_``), else none. Lists written by ``flatkd data lists`` record their ``--group`` pattern
in ``lists.json`` beside them; that pattern then replaces UCF-101's.

Listed files need not exist yet (``flatkd data cache`` reports missing ones). When the listed file
is absent but one with the same key and another video suffix exists (the lists name ``.avi``, the
canonical transcodes are ``.mp4``), that one is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flatkd.errors import ConfigError, FlatkdError, InputFileError
from flatkd.fileio import read_json, write_text
from flatkd.naming import UCF_GROUP, VIDEO_SUFFIXES, clip_group, group_pattern, video_key

Layout = Literal["ucf101", "hmdb51"]
LAYOUTS: tuple[str, ...] = ("ucf101", "hmdb51")
SPLITS = (1, 2, 3)
#: Where split lists and videos are looked for under the dataset directory, in this order.
SPLIT_DIRS = ("splits", "ucfTrainTestlist", "testTrainMulti_7030_splits", ".")
VIDEO_DIRS = ("videos", "UCF-101", "UCF101", "hmdb51_org", "hmdb51", ".")

#: beside lists made by ``flatkd data lists``: the settings they were made with, ``group`` among them
LISTS_FILE = "lists.json"
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d)\.txt$")


@dataclass(frozen=True)
class Sample:
    """One listed video: cache key, file, 0-based label and source group (None if unknown)."""

    video: str
    path: Path
    label: int
    group: str | None


@dataclass(frozen=True)
class ListedSplit:
    """What one split's lists say: class names in label order, training and test samples."""

    layout: Layout
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Non-blank lines of a list file as (1-based line number, whitespace-split fields)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such split file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read split file ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields:
            yield number, fields


def _resolve(videos_dir: Path, entry: str) -> Path:
    """The file of ``entry``: as listed, else the first that exists with the same key and one of
    :data:`~flatkd.naming.VIDEO_SUFFIXES` (the listed path when none does)."""
    listed = videos_dir / entry
    if listed.exists():
        return listed
    for suffix in VIDEO_SUFFIXES:
        candidate = videos_dir / f"{video_key(entry)}{suffix}"
        if candidate.exists():
            return candidate
    return listed


def _group_pattern(splits_dir: Path) -> re.Pattern[str]:
    """The group pattern recorded in ``splits_dir/lists.json``, else UCF-101's."""
    record = splits_dir / LISTS_FILE
    if not record.is_file():
        return UCF_GROUP
    try:
        return group_pattern(read_json(record)["group"])
    except (FlatkdError, KeyError, TypeError) as exc:
        raise InputFileError(
            f"{record}: no valid 'group' pattern ({exc}); make the lists again with `flatkd data lists --force`"
        ) from None


def _sample(entry: str, videos_dir: Path, label: int, class_name: str, pattern: re.Pattern[str]) -> Sample:
    """The sample of list entry ``Class/<file>``: key, resolved file, label, group."""
    key = video_key(entry)
    return Sample(key, _resolve(videos_dir, entry), label, clip_group(key, class_name, pattern).name)


def _read_class_index(path: Path) -> tuple[str, ...]:
    by_index: dict[int, str] = {}
    for number, fields in _lines(path):
        if len(fields) != 2 or not fields[0].isdigit():
            raise InputFileError(f"{path}:{number}: expected '<index> <class>', got {' '.join(fields)!r}")
        index, name = int(fields[0]), fields[1]
        if index in by_index or name in by_index.values():
            raise InputFileError(f"{path}:{number}: class index {index} or name {name!r} listed twice")
        by_index[index] = name
    if not by_index:
        raise InputFileError(f"{path}: lists no classes")
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise InputFileError(f"{path}: class indices must run 1..{len(by_index)} without gaps")
    return tuple(by_index[i] for i in sorted(by_index))


def _ucf_list(
    path: Path, videos_dir: Path, classes: tuple[str, ...], with_labels: bool, pattern: re.Pattern[str]
) -> tuple[Sample, ...]:
    label_of = {name: i for i, name in enumerate(classes)}
    samples = []
    for number, fields in _lines(path):
        entry = fields[0]
        class_name = entry.split("/")[0]
        if len(fields) > (2 if with_labels else 1) or "/" not in entry:
            expected = "'<Class>/<file> <label>'" if with_labels else "'<Class>/<file>'"
            raise InputFileError(f"{path}:{number}: expected {expected}, got {' '.join(fields)!r}")
        if class_name not in label_of:
            raise InputFileError(f"{path}:{number}: class {class_name!r} is not in classInd.txt")
        label = label_of[class_name]
        if len(fields) == 2 and fields[1] != str(label + 1):
            raise InputFileError(
                f"{path}:{number}: label {fields[1]} does not match class {class_name!r} "
                f"(index {label + 1} in classInd.txt)"
            )
        samples.append(_sample(entry, videos_dir, label, class_name, pattern))
    return tuple(samples)


def parse_ucf101(splits_dir: Path, videos_dir: Path, split: int) -> ListedSplit:
    """Read UCF-101-format lists (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``)."""
    classes = _read_class_index(splits_dir / "classInd.txt")
    pattern = _group_pattern(splits_dir)
    train = _ucf_list(splits_dir / f"trainlist{split:02d}.txt", videos_dir, classes, True, pattern)
    test = _ucf_list(splits_dir / f"testlist{split:02d}.txt", videos_dir, classes, False, pattern)
    return ListedSplit("ucf101", classes, train, test)


def write_ucf101(
    splits_dir: Path, classes: Sequence[str], splits: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> None:
    """Write UCF-101-format lists that :func:`parse_ucf101` reads back: ``classInd.txt`` for
    ``classes`` (label order) and, for split ``N`` = 1, 2, ... of ``splits``, ``trainlist0N.txt``
    and ``testlist0N.txt`` from its pair of (training, test) entries ``Class/<file>``; a training
    entry's label is its class folder's 1-based index."""
    index = {name: i + 1 for i, name in enumerate(classes)}
    write_text(splits_dir / "classInd.txt", "".join(f"{i} {name}\n" for name, i in index.items()))
    for split, (train, test) in enumerate(splits, start=1):
        lines = "".join(f"{entry} {index[entry.split('/')[0]]}\n" for entry in train)
        write_text(splits_dir / f"trainlist{split:02d}.txt", lines)
        write_text(splits_dir / f"testlist{split:02d}.txt", "".join(f"{entry}\n" for entry in test))


def hmdb51_class_files(splits_dir: Path, split: int) -> dict[str, Path]:
    """Class name -> ``<class>_test_split<split>.txt`` in ``splits_dir``, sorted by class name."""
    found = {}
    for path in sorted(splits_dir.glob(f"*_test_split{split}.txt")):
        match = _HMDB_FILE.match(path.name)
        if match:
            found[match["cls"]] = path
    return found


def parse_hmdb51(splits_dir: Path, videos_dir: Path, split: int) -> ListedSplit:
    """Read HMDB-51-format lists (``<class>_test_split<N>.txt``, ids 0 unused / 1 train / 2 test)."""
    files = hmdb51_class_files(splits_dir, split)
    if not files:
        raise InputFileError(f"{splits_dir}: no '<class>_test_split{split}.txt' files")
    pattern = _group_pattern(splits_dir)
    train, test = [], []
    for label, (class_name, path) in enumerate(files.items()):
        for number, fields in _lines(path):
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise InputFileError(f"{path}:{number}: expected '<file> 0|1|2', got {' '.join(fields)!r}")
            if fields[1] == "0":
                continue
            sample = _sample(f"{class_name}/{fields[0]}", videos_dir, label, class_name, pattern)
            (train if fields[1] == "1" else test).append(sample)
    return ListedSplit("hmdb51", tuple(files), tuple(train), tuple(test))


def detect_splits_dir(root: Path) -> tuple[Path, Layout]:
    """The first of :data:`SPLIT_DIRS` under ``root`` holding UCF-101 or HMDB-51 lists."""
    for name in SPLIT_DIRS:
        candidate = root / name
        if (candidate / "classInd.txt").is_file():
            return candidate, "ucf101"
        if hmdb51_class_files(candidate, 1):
            return candidate, "hmdb51"
    raise InputFileError(
        f"{root}: no split lists found (looked for classInd.txt or <class>_test_split1.txt in "
        f"{', '.join(SPLIT_DIRS)}): make a set with `flatkd data synth --out {root}` or point at a "
        "UCF-101/HMDB-51 tree"
    )


def detect_videos_dir(root: Path, first_class: str) -> Path:
    """The first of :data:`VIDEO_DIRS` under ``root`` with a folder for ``first_class``."""
    for name in VIDEO_DIRS:
        if (root / name / first_class).is_dir():
            return root / name
    raise InputFileError(
        f"{root}: no video folder with a '{first_class}' subfolder (looked in {', '.join(VIDEO_DIRS)})"
    )


def _locate_lists(
    root: Path, layout: Layout | Literal["auto"], splits_dir: str | os.PathLike[str] | None
) -> tuple[Path, Layout]:
    """The folder and layout of the split lists under ``root`` (detected unless given)."""
    if layout not in ("auto", *LAYOUTS):
        raise ConfigError(f"layout must be auto, ucf101 or hmdb51, got {layout!r}")
    if not root.is_dir():
        raise InputFileError(f"{root}: no such dataset directory")
    if splits_dir is None:
        found_dir, found_layout = detect_splits_dir(root)
        return found_dir, found_layout if layout == "auto" else layout
    splits_path = Path(splits_dir)
    if layout == "auto":
        layout = "ucf101" if (splits_path / "classInd.txt").is_file() else "hmdb51"
    return splits_path, layout


def listed_splits(
    root: str | os.PathLike[str],
    *,
    layout: Layout | Literal["auto"] = "auto",
    splits_dir: str | os.PathLike[str] | None = None,
) -> tuple[int, ...]:
    """The splits of :data:`SPLITS` the dataset under ``root`` has lists for (a ``trainlist0N.txt``
    or ``testlist0N.txt``, or HMDB-51 ``<class>_test_splitN.txt`` files); folders are detected
    as :func:`read_split` does. Raises :class:`InputFileError` when there is none."""
    splits_path, layout = _locate_lists(Path(root), layout, splits_dir)
    if layout == "ucf101":
        names = ("trainlist{:02d}.txt", "testlist{:02d}.txt")
        found = tuple(n for n in SPLITS if any((splits_path / name.format(n)).is_file() for name in names))
    else:
        found = tuple(n for n in SPLITS if hmdb51_class_files(splits_path, n))
    if not found:
        raise InputFileError(f"{splits_path}: no split lists (trainlist0N.txt / testlist0N.txt) for splits 1-3")
    return found


def read_split(
    root: str | os.PathLike[str],
    split: int = 1,
    *,
    layout: Layout | Literal["auto"] = "auto",
    splits_dir: str | os.PathLike[str] | None = None,
    videos_dir: str | os.PathLike[str] | None = None,
) -> ListedSplit:
    """Parse split ``split`` of the dataset under ``root``.

    ``layout`` and the two folders are detected (see :data:`SPLIT_DIRS`, :data:`VIDEO_DIRS`) unless
    given. Errors (missing files, unknown classes, malformed lines, a video listed for both
    training and testing) raise :class:`InputFileError` naming file and line.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ConfigError(f"split must be 1, 2 or 3, got {split}")
    splits_path, layout = _locate_lists(root, layout, splits_dir)
    if layout == "ucf101":
        first_class = _read_class_index(splits_path / "classInd.txt")[0]
    else:
        first_class = next(iter(hmdb51_class_files(splits_path, split)), "")
    videos_path = detect_videos_dir(root, first_class) if videos_dir is None else Path(videos_dir)
    parse = parse_ucf101 if layout == "ucf101" else parse_hmdb51
    listed = parse(splits_path, videos_path, split)
    _check_disjoint(listed, splits_path)
    return listed


def _check_disjoint(listed: ListedSplit, splits_dir: Path) -> None:
    for name, samples in (("training", listed.train), ("testing", listed.test)):
        seen: set[str] = set()
        for sample in samples:
            if sample.video in seen:
                raise InputFileError(f"{splits_dir}: {sample.video} is listed twice for {name}")
            seen.add(sample.video)
    both = {s.video for s in listed.train} & {s.video for s in listed.test}
    if both:
        raise InputFileError(f"{splits_dir}: {min(both)} is listed for both training and testing")
