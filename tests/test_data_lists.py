"""``flatkd data lists``: split lists from class folders, whole groups per list, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, run_flatkd
from helpers.videos import encode_with_pyav, moving_texture

from flatkd.codec.encode import EncodeSettings, encode_frames
from flatkd.data.dataset_splits import open_dataset
from flatkd.data.splits import listed_splits, read_split
from flatkd.errors import InputFileError

SUFFIXES = (".mpg", ".mov", ".avi", ".mp4")


def _real_video(path: Path, seed: int) -> None:
    """A tiny real clip: flatkd's encoder for .avi/.mp4, plain PyAV for MPEG-1 .mpg and .mov."""
    frames = moving_texture(4, height=32, width=32, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mpg":
        encode_with_pyav(path, frames, "mpeg1video", rate=25)
    elif path.suffix == ".mov":
        encode_with_pyav(path, frames, "mpeg4", rate=25)
    else:
        encode_frames(frames, path, EncodeSettings(width=32, height=32))


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root


def test_mixed_suffix_class_folders_keep_every_group_in_one_of_train_val_test(tmp_path: Path) -> None:
    """Issue 15's must-show: clips of one group carry different suffixes; no split of the lists
    nor the validation carve of the loader divides a group."""
    raw = tmp_path / "raw"
    n = 0
    for cls in ("Alea", "Bolo"):
        for group in range(1, 7):
            for clip in range(1, 3):
                _real_video(raw / cls / f"v_{cls}_g{group:02d}_c{clip:02d}{SUFFIXES[n % 4]}", seed=n)
                n += 1
    result = run_flatkd("data", "lists", str(raw))
    assert result.exit_code == 0, result.output
    assert "2 classes, 24 clips, 12 groups" in result.stdout and not result.stderr
    assert "split 3: train 16 clips, test 8 clips (4 groups)" in result.stdout
    tests = []
    for split in (1, 2, 3):
        data = open_dataset(raw, split)
        assert data.classes == ("Alea", "Bolo") and data.val and data.test
        parts = [{(s.label, s.group) for s in part} for part in (data.train, data.val, data.test)]
        assert all(None not in part for part in parts), "every clip's gNN is found, whatever its suffix"
        assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
        clips = [*data.train, *data.val, *data.test]
        assert len({s.video for s in clips}) == 24 and all(s.path.is_file() for s in clips)
        assert all(s.video == f"{s.path.parent.name}/{s.path.stem}" for s in clips), "keys carry no suffix"
        tests.append(parts[2])
    assert not tests[0] & tests[1] and not tests[1] & tests[2] and not tests[0] & tests[2], "blocks follow each other"
    assert json.loads((raw / "splits" / "lists.json").read_text())["splits"] == 3


def test_same_seed_same_lists_and_another_seed_other_test_groups(tmp_path: Path) -> None:
    names = [f"{c}/v_{c}_g{g:02d}_c01.mp4" for c in ("A", "B") for g in range(1, 11)]
    first, second, other = (_touch(tmp_path / name, *names) for name in ("one", "two", "other"))
    for root, seed in ((first, "0"), (second, "0"), (other, "5")):
        assert run_flatkd("data", "lists", str(root), "--seed", seed).exit_code == 0
    lists = [(root / "splits" / "testlist01.txt").read_text() for root in (first, second, other)]
    assert lists[0] == lists[1] != lists[2]


def test_a_custom_group_pattern_is_recorded_and_used_by_the_validation_carve(tmp_path: Path) -> None:
    raw = _touch(tmp_path, *(f"{c}/take{t}-cam{k}.mp4" for c in ("A", "B") for t in range(1, 9) for k in (1, 2)))
    result = run_flatkd("data", "lists", str(raw), "--group", r"^(take\d+)-", "--splits", "1")
    assert result.exit_code == 0 and not result.stderr, result.output
    assert not (raw / "splits" / "trainlist02.txt").exists()
    data = open_dataset(raw, 1, val_fraction=0.3)
    parts = [{(s.label, s.group) for s in part} for part in (data.train, data.val, data.test)]
    assert {g for _, g in parts[0]} <= {f"take{t}" for t in range(1, 9)} and data.val
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]


def test_no_group_match_falls_back_to_the_movie_or_the_file_and_warns(tmp_path: Path) -> None:
    movies = [f"brush_hair/{m}_brush_hair_f_nm_np1_ba_goo_{i}.avi" for m in ("April", "Bob", "Cut") for i in range(2)]
    raw = _touch(tmp_path, *movies, *(f"wave/clip{i}.mkv" for i in range(4)))
    result = run_flatkd("data", "lists", str(raw), "--splits", "1")
    assert result.exit_code == 0, result.output
    assert "10 of 10 clips match no --group pattern" in result.stderr and "6 grouped by HMDB-51" in result.stderr
    assert "4 each a group of its own" in result.stderr and "2 classes, 10 clips, 7 groups" in result.stdout
    listed = read_split(raw, 1)
    groups = {s.video: s.group for s in (*listed.train, *listed.test)}
    assert groups["brush_hair/Bob_brush_hair_f_nm_np1_ba_goo_1"] == "Bob" and groups["wave/clip0"] is None
    test_movies = {s.group for s in listed.test if s.label == 0}
    assert all(s.group not in test_movies for s in listed.train if s.label == 0)


def test_existing_lists_are_refused_unless_forced_and_force_removes_stale_splits(tmp_path: Path) -> None:
    raw = _touch(tmp_path, *(f"A/v_A_g{g:02d}_c01.avi" for g in range(1, 5)))
    assert run_flatkd("data", "lists", str(raw)).exit_code == 0
    assert_one_line_error(run_flatkd("data", "lists", str(raw), "--splits", "1"), "exist already", "--force")
    assert (raw / "splits" / "testlist03.txt").exists()
    assert run_flatkd("data", "lists", str(raw), "--splits", "1", "--force").exit_code == 0
    assert sorted(p.name for p in (raw / "splits").iterdir()) == ["classInd.txt", "lists.json", "testlist01.txt", "trainlist01.txt"]


@pytest.mark.parametrize(
    ("names", "fragments"),
    [
        ((), ("no class folders with videos",)),
        (("A/notes.txt", "splits/x.txt"), ("no class folders with videos",)),
        (("A/v_A_g01_c01.avi", "A/v_A_g01_c02.mpg", "B/v_B_g01_c01.avi", "B/v_B_g02_c01.avi"), ("A", "one group", "g01", "--group")),
        (("A/v_A_g01_c01.avi", "A/v_A_g01_c01.mp4", "A/v_A_g02_c01.avi"), ("v_A_g01_c01", "two suffixes")),
        (("A/v A_g01_c01.avi", "A/v_A_g02_c01.avi"), ("white space",)),
    ],
)
def test_unsplittable_folders_are_refused_in_one_line_before_writing(
    tmp_path: Path, names: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    raw = _touch(tmp_path / "raw", *names)
    raw.mkdir(exist_ok=True)
    assert_one_line_error(run_flatkd("data", "lists", str(raw)), *fragments)
    assert not (raw / "splits" / "classInd.txt").exists()


def test_a_bad_group_pattern_is_one_line(tmp_path: Path) -> None:
    raw = _touch(tmp_path, "A/a.avi", "A/b.avi")
    assert_one_line_error(run_flatkd("data", "lists", str(raw), "--group", "(g"), "not a regular expression")


def test_data_cache_caches_the_splits_that_exist(tmp_path: Path) -> None:
    """Lists of split 1 only: `data cache` (default --split all) caches them instead of failing
    with "no such split file" for split 2."""
    raw = tmp_path / "raw"
    for n, name in enumerate(f"{c}/v_{c}_g{g:02d}_c01{s}" for c in ("A", "B") for g, s in ((1, ".avi"), (2, ".mp4"))):
        _real_video(raw / name, seed=n)
    assert run_flatkd("data", "lists", str(raw), "--splits", "1").exit_code == 0
    result = run_flatkd("data", "cache", str(raw), "--size", "16", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "4 videos cached, 0 already cached, 0 failed" in result.stdout
    assert_one_line_error(run_flatkd("data", "cache", str(raw), "--split", "2"), "trainlist02.txt", "no such split file")


def test_listed_splits_finds_ucf_and_hmdb_lists(tmp_path: Path) -> None:
    ucf = _touch(tmp_path / "ucf", "splits/classInd.txt", "splits/trainlist01.txt", "splits/testlist03.txt")
    assert listed_splits(ucf) == (1, 3)
    hmdb = _touch(tmp_path / "hmdb", "testTrainMulti_7030_splits/wave_test_split2.txt", "hmdb51_org/wave/x.avi")
    assert listed_splits(hmdb, layout="hmdb51", splits_dir=hmdb / "testTrainMulti_7030_splits") == (2,)
    with pytest.raises(InputFileError, match="no split lists"):
        listed_splits(_touch(tmp_path / "none", "splits/classInd.txt"))


def test_class_folders_under_videos_are_found_and_listed_beside_them(tmp_path: Path) -> None:
    raw = _touch(tmp_path, *(f"videos/{c}/v_{c}_g{g:02d}_c01.mov" for c in ("A", "B") for g in range(1, 5)))
    result = run_flatkd("data", "lists", str(raw), "--splits", "2")
    assert result.exit_code == 0, result.output
    assert (raw / "splits" / "trainlist02.txt").is_file() and not (raw / "videos" / "splits").exists()
    data = open_dataset(raw, 2)
    assert all(s.path.is_file() and s.path.parent.parent == raw / "videos" for s in (*data.train, *data.val, *data.test))
