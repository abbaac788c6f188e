"""The one key and group rule for video files (flatkd.naming), and the split loader using it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flatkd.data.splits import read_split
from flatkd.data.validation import carve_validation
from flatkd.errors import ConfigError
from flatkd.naming import VIDEO_SUFFIXES, clip_group, group_pattern, is_video, video_key

FFMPEG_SUFFIXES = ".avi .mp4 .m4v .mkv .h264 .mpg .mpeg .mov .webm .flv .wmv .3gp .ts .m2ts .vob .ogv .264 .265 .hevc .y4m"


@pytest.mark.parametrize("suffix", FFMPEG_SUFFIXES.split())
def test_every_container_suffix_gives_the_same_key_and_group(suffix: str) -> None:
    name = f"Alea/v_Alea_g02_c01{suffix}"
    assert suffix in VIDEO_SUFFIXES and is_video(name) and is_video(name.upper())
    assert video_key(name) == video_key(f"Alea/v_Alea_g02_c01{suffix.upper()}") == "Alea/v_Alea_g02_c01"
    assert clip_group(name, "Alea") == ("g02", "pattern")


def test_clips_of_one_source_share_a_group_whatever_their_suffix() -> None:
    assert clip_group("v_Alea_g02_c01.mpg", "Alea").name == clip_group("v_Alea_g02_c02.mov", "Alea").name == "g02"
    assert clip_group("v_Alea_g03_c01.webm", "Alea").name == "g03"
    assert video_key("Alea/notes.txt") == "Alea/notes.txt" and not is_video("Alea/notes.txt")


def test_without_gnn_the_group_is_the_hmdb_movie_else_the_file() -> None:
    assert clip_group("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") == ("April_09", "movie")
    assert clip_group("v_Alea_07.mpg", "Alea") == (None, "file"), "UCF-101's v_ prefix names no movie"
    assert clip_group("holiday.mov", "Alea") == (None, "file")


def test_a_custom_pattern_takes_its_first_capture_group_or_the_whole_match() -> None:
    assert clip_group("Alea/take3-cam2.mp4", "Alea", group_pattern(r"^(take\d+)-")) == ("take3", "pattern")
    assert clip_group("take3-cam2.mp4", "Alea", group_pattern(r"take\d+")) == ("take3", "pattern")
    with pytest.raises(ConfigError, match="not a regular expression"):
        group_pattern("(take")


def test_lists_naming_mixed_suffixes_keep_the_groups_together(tmp_path: Path) -> None:
    """The bug of issue 15: with .mpg/.mov entries every clip was its own group, so the
    validation carve put g02_c02 in validation while g02_c01 trained."""
    lists = tmp_path / "splits"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Alea\n")
    names = [f"Alea/v_Alea_g{g:02d}_c{c:02d}{s}" for g in range(1, 7) for c, s in ((1, ".mpg"), (2, ".mov"))]
    (lists / "trainlist01.txt").write_text("".join(f"{n} 1\n" for n in names[2:]))
    (lists / "testlist01.txt").write_text("".join(f"{n}\n" for n in names[:2]))
    (tmp_path / "videos" / "Alea").mkdir(parents=True)
    listed = read_split(tmp_path, 1)
    assert [s.video for s in listed.test] == ["Alea/v_Alea_g01_c01", "Alea/v_Alea_g01_c02"]
    assert {s.group for s in listed.train} == {"g02", "g03", "g04", "g05", "g06"}
    for seed in range(5):
        train, val = carve_validation(listed.train, 0.3, seed)
        assert val and not {s.group for s in train} & {s.group for s in val}
