"""The one rule that names a video: its key (cache, split lists, logits) and its source group.

Key: the path without its container suffix, for every suffix FFmpeg opens
(:data:`VIDEO_SUFFIXES`, compared case-insensitively), so ``Class/v_X_g02_c01.mpg`` and
``Class/v_X_g02_c01.avi`` have the key ``Class/v_X_g02_c01``; a path with another suffix is its own
key.

Group: clips cut from one source share a group, so that splits keep them together (a group split
between training and testing, or training and validation, leaks the source). The rule, applied to
the file name without suffix, first that applies:

1. ``pattern`` (default UCF-101's ``_(g\\d+)_c\\d+$``, ``v_ApplyEyeMakeup_g08_c01`` -> ``g08``): its
   first capture group, or the whole match if it has none;
2. HMDB-51's source movie: the name up to ``_<class>_``
   (``April_09_brush_hair_u_nm_np1_ba_goo_0`` in class ``brush_hair`` -> ``April_09``), unless
   that is UCF-101's prefix ``v`` (``v_Alea_07`` names no movie);
3. the file itself: one group per file (``rule="file"``, ``name=None``).
"""

from __future__ import annotations

import os
import re
from typing import Literal, NamedTuple

from flatkd.errors import ConfigError

#: container suffixes of the video files FFmpeg opens (a listed ``.avi`` whose file is missing is
#: looked for under each of these, in this order)
VIDEO_SUFFIXES = (
    ".avi", ".mp4", ".m4v", ".mkv", ".h264", ".mpg", ".mpeg", ".mov", ".webm", ".flv", ".wmv",
    ".3gp", ".ts", ".m2ts", ".vob", ".ogv", ".264", ".265", ".hevc", ".y4m",
)  # fmt: skip

#: UCF-101's clip names ``v_<Class>_g<GG>_c<CC>``: the group is ``gGG``
UCF_GROUP_PATTERN = r"_(g\d+)_c\d+$"
UCF_GROUP = re.compile(UCF_GROUP_PATTERN)

GroupRule = Literal["pattern", "movie", "file"]


class ClipGroup(NamedTuple):
    """A clip's source group and the rule of the module docstring that found it (``name`` is
    None for ``rule="file"``: the clip is a group of its own)."""

    name: str | None
    rule: GroupRule


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in one of :data:`VIDEO_SUFFIXES`."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_SUFFIXES


def video_key(path: str | os.PathLike[str]) -> str:
    """``path`` without its container suffix (module docstring); ``/``-separated as given."""
    text = os.fspath(path)
    stem, suffix = os.path.splitext(text)
    return stem if suffix.lower() in VIDEO_SUFFIXES else text


def group_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled; :class:`ConfigError` naming it if it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"group pattern {pattern!r} is not a regular expression ({exc})") from None


def clip_group(name: str, class_name: str, pattern: re.Pattern[str] = UCF_GROUP) -> ClipGroup:
    """The source group of the clip called ``name`` (a file name or key; folders and a container
    suffix are dropped) in class ``class_name``, by the rule of the module docstring."""
    stem = video_key(name).rsplit("/", 1)[-1]
    match = pattern.search(stem)
    if match:
        return ClipGroup((match.group(1) if pattern.groups else None) or match.group(0), "pattern")
    cut = stem.rfind(f"_{class_name}_")
    if cut > 0 and stem[:cut] != "v":
        return ClipGroup(stem[:cut], "movie")
    return ClipGroup(None, "file")
