"""The synthetic dataset: class design, determinism, real MPEG-4 files, layout and resuming."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from flatkd.cli import cli
from flatkd.data.synth import SynthSettings, class_table, generate_synthetic
from flatkd.data.lists import held_out_groups
from flatkd.data.synth.render import Knobs, make_scene, render_clip
from flatkd.data.synth import render_families
from flatkd.data.synth.render_families import FamilyKnobs, member_readings
from flatkd.errors import ConfigError

#: sha256 of the frames of one clip per class of the 4-class factorial set below, as flatkd 0.1
#: (commit cc8d44d) rendered them.
FACTORIAL_DIGEST = "a839350378a4ff3453b9a2ad06517fa5491b27a8bfe98de2d5809b00ceef864a"
TINY = SynthSettings(classes=4, clips_per_class=4, clips_per_group=2, frames=16, width=64, height=48, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("num_classes", [4, 6, 8, 10])
def test_factorial_any_two_factors_identify_the_class_and_no_single_one_does(num_classes: int) -> None:
    table = class_table(num_classes, "factorial")
    assert [spec.index for spec in table] == list(range(num_classes))
    assert len({spec.name for spec in table}) == num_classes
    factors = {"appearance": lambda s: s.appearance, "motion": lambda s: s.motion, "cue": lambda s: s.cue}
    for name, level in factors.items():
        counts = {}
        for spec in table:
            counts[level(spec)] = counts.get(level(spec), 0) + 1
        assert set(counts.values()) == {2}, f"every {name} level is shared by exactly two classes"
    for (_, first), (_, second) in itertools.combinations(factors.items(), 2):
        assert len({(first(s), second(s)) for s in table}) == num_classes


@pytest.mark.parametrize("num_classes", [4, 6, 8, 10])
def test_families_every_modality_sees_the_family_and_the_member(num_classes: int) -> None:
    table = class_table(num_classes)
    assert [spec.index for spec in table] == list(range(num_classes))
    assert len({spec.name for spec in table}) == num_classes
    families = {}
    for spec in table:
        families.setdefault((spec.motion, spec.shape, spec.hue), []).append(spec.member)
    # motion (MV, residual edges), shape (I-frame, residual edges) and hue (I-frame) name one family
    assert len(families) == num_classes // 2 == len({s.motion for s in table}) == len({s.shape for s in table})
    assert all(sorted(members) == [0, 1] for members in families.values())


def _readings(count: int) -> tuple[np.ndarray, FamilyKnobs]:
    spec = class_table(4)[1]  # member 1: latent +1
    knobs = FamilyKnobs.from_difficulty(0.5)
    rng = np.random.default_rng(0)
    return np.array([list(member_readings(spec, rng, knobs).values()) for _ in range(count)]), knobs


def test_families_member_latent_is_shared_with_private_noise_per_modality(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_families, "READING_LIMIT", math.inf)  # the Gaussian part alone
    readings, knobs = _readings(20000)
    assert np.allclose(readings.mean(0), 1.0, atol=0.03)
    private = np.array(list(knobs.private.values()))
    assert np.allclose(readings.std(0), np.sqrt(knobs.shared_jitter**2 + private**2), rtol=0.03)
    # the shared part: covariance of two modalities' readings is the shared variance (within 4
    # standard errors of a sample covariance of Gaussians, sqrt((var_a var_b + cov^2) / n))
    variance, shared = knobs.shared_jitter**2 + private**2, knobs.shared_jitter**2
    error = 4 * math.sqrt((variance[0] * variance[1] + shared**2) / len(readings))
    assert np.cov(readings[:, 0], readings[:, 1])[0, 1] == pytest.approx(shared, abs=error)


def test_families_member_readings_are_clipped_where_the_gaussian_tails_say() -> None:
    readings, knobs = _readings(20000)
    limit = render_families.READING_LIMIT
    assert readings.min() >= -limit and readings.max() <= limit
    sd = np.sqrt(knobs.shared_jitter**2 + np.array(list(knobs.private.values())) ** 2)
    above = 0.5 * np.array([math.erfc((limit - 1.0) / (s * math.sqrt(2.0))) for s in sd])  # P(N(1, sd) > limit)
    assert np.allclose((readings == limit).mean(0), above, atol=0.01)


def test_factorial_design_renders_the_frames_flatkd_0_1_rendered() -> None:
    """The factorial design is kept so that old results reproduce: its rendered frames (before
    the encoder, so independent of the FFmpeg build) hash to what flatkd 0.1 rendered."""
    settings = SynthSettings(**{**TINY.__dict__, "design": "factorial"})
    knobs = Knobs.from_difficulty(settings.difficulty)
    digest = hashlib.sha256()
    for spec in class_table(4, "factorial"):
        scene = make_scene(np.random.default_rng(np.random.SeedSequence(3, spawn_key=(spec.index, 1))), 64, 48, 16, knobs)
        rng = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(spec.index, 1, 1)))
        for frame in render_clip(spec, scene, rng, width=64, height=48, frames=16, knobs=knobs):
            digest.update(frame.tobytes())
    assert digest.hexdigest() == FACTORIAL_DIGEST


@pytest.mark.parametrize("num_classes", [3, 12, 2])
@pytest.mark.parametrize("design", ["families", "factorial"])
def test_unsupported_class_counts_are_refused(num_classes: int, design: str) -> None:
    with pytest.raises(ConfigError, match="even number of classes"):
        class_table(num_classes, design)


def test_held_out_groups_cover_about_30_percent_and_rotate() -> None:
    assert held_out_groups(10, 1) == {1, 2, 3}
    assert held_out_groups(10, 2) == {4, 5, 6}
    assert held_out_groups(10, 3) == {7, 8, 9}
    assert held_out_groups(2, 1) == {1} and held_out_groups(2, 2) == {2}
    assert held_out_groups(10, 1, 0.6) == {1, 2, 3, 4, 5, 6}
    assert held_out_groups(10, 2, 0.6) == {7, 8, 9, 10, 1, 2}, "blocks wrap around"
    assert held_out_groups(3, 1, 0.9) == {1, 2}, "at least one group trains"


def test_same_seed_gives_identical_bytes_in_any_worker_count(tmp_path: Path) -> None:
    generate_synthetic(tmp_path / "a", TINY, jobs=1)
    generate_synthetic(tmp_path / "b", TINY, jobs=2)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len([k for k in first if k.endswith(".avi")]) == 16
    assert first == second
    generate_synthetic(tmp_path / "c", SynthSettings(**{**TINY.__dict__, "seed": 4}), jobs=1)
    other = _files(tmp_path / "c")
    assert first.keys() == other.keys()
    assert all(first[k] != other[k] for k in first if k.endswith(".avi"))


def test_clips_are_canonical_mpeg4_whose_p_frames_carry_motion_vectors(tmp_path: Path) -> None:
    generate_synthetic(tmp_path, TINY, jobs=1)
    clips = sorted((tmp_path / "videos").rglob("*.avi"))
    for clip in clips[:: len(clips) // 4]:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"flags2": "+export_mvs"}
            assert stream.codec_context.name == "mpeg4"
            assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
            types, moving = [], 0
            for frame in container.decode(stream):
                types.append(int(frame.pict_type))
                vectors = frame.side_data.get("MOTION_VECTORS")
                if vectors is not None:
                    arr = vectors.to_ndarray()
                    moving += int(np.count_nonzero(arr["motion_x"]) + np.count_nonzero(arr["motion_y"]))
        assert types == [1] + [2] * 11 + [1] + [2] * 3, "GOP 12, P-frames only"
        assert moving > 0, f"{clip.name}: no P-frame moved a block"


def test_layout_and_split_lists_follow_ucf101(tmp_path: Path) -> None:
    generate_synthetic(tmp_path, TINY, jobs=1)
    splits = tmp_path / "splits"
    names = [spec.name for spec in class_table(4)]
    assert (splits / "classInd.txt").read_text().splitlines() == [f"{i + 1} {n}" for i, n in enumerate(names)]
    for split in (1, 2, 3):
        train = (splits / f"trainlist{split:02d}.txt").read_text().splitlines()
        test = (splits / f"testlist{split:02d}.txt").read_text().splitlines()
        assert len(train) + len(test) == 16
        entry, label = train[0].split()
        cls, stem = entry.split("/")
        assert label == str(names.index(cls) + 1)
        assert stem.startswith(f"v_{cls}_g") and (tmp_path / "videos" / entry).is_file()
        train_groups = {(e.split("/")[0], e.split("_g")[1][:2]) for e in (t.split()[0] for t in train)}
        test_groups = {(e.split("/")[0], e.split("_g")[1][:2]) for e in test}
        assert not train_groups & test_groups, "groups never straddle train and test"


def test_rerun_restores_a_deleted_clip_and_keeps_the_others(tmp_path: Path) -> None:
    generate_synthetic(tmp_path, TINY, jobs=1)
    clips = sorted((tmp_path / "videos").rglob("*.avi"))
    original = clips[5].read_bytes()
    clips[5].unlink()
    kept = {p: p.stat().st_mtime_ns for p in clips if p != clips[5]}
    generate_synthetic(tmp_path, TINY, jobs=1)
    assert clips[5].read_bytes() == original
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


def test_cli_refuses_other_settings_in_the_same_directory(tmp_path: Path) -> None:
    args = ["data", "synth", "--out", str(tmp_path), "--classes", "4", "--clips-per-class", "4",
            "--clips-per-group", "2", "--frames", "14", "--size", "32"]
    ok = CliRunner().invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert "wrote 16 clips of 4 classes" in ok.output
    refused = CliRunner().invoke(cli, [*args[:-1], "48"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1
    assert refused.output.startswith("flatkd: error: ") and "other settings (height, width)" in refused.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"classes": 5}, "even number of classes"),
        ({"clips_per_class": 2, "clips_per_group": 2}, "at least 2 groups"),
        ({"frames": 1}, "frames must be >= 2"),
        ({"width": 63}, "even number of pixels"),
        ({"difficulty": 1.5}, r"difficulty must be in \[0, 1\]"),
        ({"design": "mixed"}, "design must be one of families, factorial"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_settings_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthSettings(**{**TINY.__dict__, **change})
