"""UCF-101 and HMDB-51 split lists, layout detection, errors, and the validation carve."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_SYNTH
from helpers.cli import assert_one_line_error, run_flatkd

from flatkd.cli import cli
from flatkd.data.dataset_splits import list_videos, open_dataset
from flatkd.data.splits import Sample, read_split
from flatkd.data.synth.build import generate_synthetic
from flatkd.data.validation import carve_validation
from flatkd.errors import ConfigError, InputFileError

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


def _write(path: Path, lines: list[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode())


def _ucf_tree(root: Path) -> Path:
    """A UCF-101 download in miniature: ucfTrainTestlist/ with CRLF lists, UCF-101/<class>/."""
    lists = root / "ucfTrainTestlist"
    _write(lists / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES)], "\r\n")
    train, test = [], []
    for label, cls in enumerate(UCF_CLASSES):
        for group in range(1, 6):
            for clip in range(1, 3 + (group % 2)):
                entry = f"{cls}/v_{cls}_g{group:02d}_c{clip:02d}.avi"
                (root / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
                if group <= 2:
                    test.append(entry)
                else:
                    train.append(f"{entry} {label + 1}")
    for split in (1, 2, 3):
        _write(lists / f"trainlist{split:02d}.txt", train, "\r\n")
        _write(lists / f"testlist{split:02d}.txt", test, "\r\n")
    return root


HMDB_CLASSES = ["brush_hair", "cartwheel", "ride_bike"]


def _hmdb_tree(root: Path) -> Path:
    """HMDB-51 in miniature: testTrainMulti_7030_splits/<class>_test_split<N>.txt, hmdb51_org/<class>/."""
    for cls in HMDB_CLASSES:
        lines = []
        for movie in ("Alpha", "Beta_Movie", "Gamma"):
            for n in range(3):
                ident = {"Alpha": 1, "Beta_Movie": 2, "Gamma": 0}[movie] if n < 2 else 1
                lines.append(f"{movie}_{cls}_f_nm_np1_fr_med_{n}.avi {ident} ")
        for split in (1, 2, 3):
            _write(root / "testTrainMulti_7030_splits" / f"{cls}_test_split{split}.txt", lines)
        (root / "hmdb51_org" / cls).mkdir(parents=True)
    return root


def test_ucf101_tree_parses_to_the_right_counts_labels_and_groups(tmp_path: Path) -> None:
    root = _ucf_tree(tmp_path)
    listed = read_split(root, 1)
    assert listed.layout == "ucf101"
    assert listed.classes == tuple(UCF_CLASSES)
    # groups 3, 5 have 3 clips, group 4 has 2: 8 training clips per class; groups 1, 2: 3 + 2 test clips
    assert Counter(s.label for s in listed.train) == {0: 8, 1: 8, 2: 8}
    assert Counter(s.label for s in listed.test) == {0: 5, 1: 5, 2: 5}
    first = listed.train[0]
    assert first == Sample(
        video="ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01",
        path=root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g03_c01.avi",
        label=0,
        group="g03",
    )
    assert listed.test[-1].label == 2 and listed.test[-1].group == "g02"


def test_a_transcoded_mp4_is_found_when_the_list_names_the_avi(tmp_path: Path) -> None:
    root = _ucf_tree(tmp_path)
    mp4 = root / "UCF-101" / "YoYo" / "v_YoYo_g01_c02.mp4"
    mp4.write_bytes(b"")
    test = {s.video: s for s in read_split(root, 2).test}
    assert test["YoYo/v_YoYo_g01_c02"].path == mp4
    assert test["YoYo/v_YoYo_g01_c01"].path.suffix == ".avi"


def test_hmdb51_tree_parses_ids_labels_and_source_groups(tmp_path: Path) -> None:
    root = _hmdb_tree(tmp_path)
    listed = read_split(root, 3)
    assert listed.layout == "hmdb51"
    assert listed.classes == tuple(HMDB_CLASSES)
    # per class: Alpha 0,1 train; Beta_Movie 0,1 test; n = 2 of every movie train; Gamma 0,1 unused
    assert Counter(s.label for s in listed.train) == {0: 5, 1: 5, 2: 5}
    assert Counter(s.label for s in listed.test) == {0: 2, 1: 2, 2: 2}
    groups = {s.video: s.group for s in listed.train + listed.test}
    assert groups["ride_bike/Beta_Movie_ride_bike_f_nm_np1_fr_med_0"] == "Beta_Movie"
    first = root / "hmdb51_org" / "brush_hair" / "Alpha_brush_hair_f_nm_np1_fr_med_0.avi"
    assert listed.train[0].path == first
    assert {s.video for s in list_videos(root)} == {s.video for s in listed.train + listed.test}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "ucfTrainTestlist" / "testlist01.txt").unlink(),
         r"testlist01.txt: no such split file"),
        (lambda r: _write(r / "ucfTrainTestlist" / "testlist01.txt", ["Juggling/v_Juggling_g01_c01.avi"]),
         r"testlist01.txt:1: class 'Juggling' is not in classInd.txt"),
        (lambda r: _write(r / "ucfTrainTestlist" / "trainlist01.txt", ["YoYo/v_YoYo_g03_c01.avi 1"]),
         r"trainlist01.txt:1: label 1 does not match class 'YoYo' \(index 3"),
        (lambda r: _write(r / "ucfTrainTestlist" / "trainlist01.txt", ["YoYo/v_YoYo_g03_c01.avi 3 x"]),
         r"trainlist01.txt:1: expected '<Class>/<file> <label>'"),
        (lambda r: _write(r / "ucfTrainTestlist" / "classInd.txt", ["1 YoYo", "one Basketball"]),
         r"classInd.txt:2: expected '<index> <class>'"),
        (lambda r: _write(r / "ucfTrainTestlist" / "trainlist01.txt", ["YoYo/v_YoYo_g01_c01.avi 3"]),
         r"YoYo/v_YoYo_g01_c01 is listed for both training and testing"),
        (lambda r: (r / "ucfTrainTestlist" / "classInd.txt").unlink(), r"no split lists found"),
    ],
)
def test_broken_ucf_lists_raise_one_line_errors(tmp_path: Path, damage, message: str) -> None:
    root = _ucf_tree(tmp_path)
    damage(root)
    with pytest.raises(InputFileError, match=message) as error:
        read_split(root, 1)
    assert "\n" not in str(error.value)


def test_broken_hmdb_line_names_file_and_line(tmp_path: Path) -> None:
    root = _hmdb_tree(tmp_path)
    _write(root / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt", ["a.avi 1", "b.avi 7"])
    with pytest.raises(InputFileError, match=r"cartwheel_test_split1.txt:2: expected '<file> 0\|1\|2'"):
        read_split(root, 1)


def test_bad_split_number_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split must be 1, 2 or 3"):
        read_split(_ucf_tree(tmp_path), 4)
    with pytest.raises(InputFileError, match="no such dataset directory"):
        read_split(tmp_path / "nowhere", 1)


def test_cli_reports_a_broken_list_in_one_line(tmp_path: Path) -> None:
    root = _ucf_tree(tmp_path)
    _write(root / "ucfTrainTestlist" / "testlist02.txt", ["Juggling/v_Juggling_g01_c01.avi"])
    result = CliRunner().invoke(cli, ["data", "cache", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        f"flatkd: error: {root / 'ucfTrainTestlist' / 'testlist02.txt'}:1: "
        "class 'Juggling' is not in classInd.txt\n"
    )


def _grouped_samples() -> list[Sample]:
    """3 classes x 6 groups of 1-4 clips."""
    samples = []
    for label in range(3):
        for group in range(6):
            for clip in range(1 + (group + label) % 4):
                key = f"c{label}/v_c{label}_g{group:02d}_c{clip:02d}"
                samples.append(Sample(key, Path(key + ".avi"), label, f"g{group:02d}"))
    return samples


def test_validation_is_stratified_grouped_and_order_independent() -> None:
    samples = _grouped_samples()
    train, val = carve_validation(samples, 0.25, seed=7)
    assert sorted(train + val, key=lambda s: s.video) == sorted(samples, key=lambda s: s.video)
    per_class = Counter(s.label for s in samples)
    for label in range(3):
        held = [s for s in val if s.label == label]
        assert len(held) >= round(0.25 * per_class[label]) > 0
        assert len(held) < per_class[label]
        assert {s.group for s in held}.isdisjoint({s.group for s in train if s.label == label})
    shuffled = samples.copy()
    random.Random(0).shuffle(shuffled)
    assert set(carve_validation(shuffled, 0.25, seed=7)[1]) == set(val)
    assert set(carve_validation(samples, 0.25, seed=8)[1]) != set(val)
    assert carve_validation(samples, 0.0)[1] == ()


def test_a_class_with_one_group_keeps_all_its_clips_for_training(caplog: pytest.LogCaptureFixture) -> None:
    samples = [Sample(f"a/{i}", Path(f"a/{i}.avi"), 0, "g01") for i in range(4)]
    samples += [Sample(f"b/{i}", Path(f"b/{i}.avi"), 1, None) for i in range(4)]
    train, val = carve_validation(samples, 0.5)
    assert all(s.label == 1 for s in val) and len(val) == 2, "ungrouped clips are their own groups"
    assert "one group" in caplog.text


def test_open_dataset_carves_validation_from_training_only(tmp_path: Path) -> None:
    root = _ucf_tree(tmp_path)
    splits = open_dataset(root, split=1, val_fraction=0.3, seed=1)
    listed = read_split(root, 1)
    assert splits.test == listed.test
    assert set(splits.train) | set(splits.val) == set(listed.train)
    assert splits.val and not set(splits.val) & set(splits.train)
    assert splits.num_classes == 3 and splits.layout == "ucf101"
    with pytest.raises(ConfigError, match="val_fraction"):
        open_dataset(root, val_fraction=1.0)


def test_training_clips_of_one_group_per_class_are_refused_with_the_reason() -> None:
    samples = [Sample(f"c{label}/{i}", Path(f"c{label}/{i}.avi"), label, "g01") for label in range(3) for i in range(4)]
    with pytest.raises(ConfigError, match="every class's training clips come from a single group.*--clips-per-group"):
        carve_validation(samples, 0.25)
    assert carve_validation(samples, 0.0)[1] == (), "without validation there is nothing to refuse"


def test_train_on_a_synthetic_set_with_one_training_group_per_class_is_refused_up_front(tmp_path: Path) -> None:
    data, run = tmp_path / "synth", tmp_path / "run"
    generate_synthetic(data, dataclasses.replace(TINY_SYNTH, clips_per_class=4, clips_per_group=2, classes=4), jobs=1)
    result = run_flatkd("train", "--data", str(data), "--source", "videos", "--modality", "iframe", "--run", str(run))
    assert_one_line_error(result, "no clip can go to validation", "raise --clips-per-class or lower --clips-per-group")
    assert not (run / "config.yaml").exists()
