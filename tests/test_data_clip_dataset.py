"""ClipDataset, TSN sampling and transforms, checked against values computed here from the raw
cached arrays with CoViAR's formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from flatkd.data.cache import CacheSettings, ModalityCache, build_cache
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import list_videos
from flatkd.data.sampling import segment_positions
from flatkd.data.splits import Sample
from flatkd.data.synth import SynthSettings, generate_synthetic
from flatkd.data.transforms import multiscale_crop, normalisation
from flatkd.errors import ConfigError

SET = SynthSettings(classes=4, clips_per_class=4, clips_per_group=2, frames=26, width=64, height=48, seed=11)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], ModalityCache]:
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(root, SET, jobs=1)
    samples = list_videos(root)
    build_cache(samples, root / "cache", CacheSettings(size=None), jobs=1)
    return samples, ModalityCache(root / "cache")


def _coviar(raw: dict[str, np.ndarray], mv_scale: tuple[float, float] = (1.0, 1.0)) -> dict[str, np.ndarray]:
    """CoViAR's normalisation (dataset.py) of [S, H, W, C] arrays -> [S, C, H, W] float64."""
    iframe = (raw["iframe"] / 255.0 - MEAN) / STD
    mv = np.clip(raw["mv"] * np.array(mv_scale) * 127.5 / 20 + 128, 0, 255) / 255 - 0.5
    residual = (np.clip(raw["residual"] + 128.0, 0, 255) / 255 - 0.5) / STD
    return {k: v.transpose(0, 3, 1, 2) for k, v in {"iframe": iframe, "mv": mv, "residual": residual}.items()}


def _raw(cache: ModalityCache, key: str, p_rows: np.ndarray) -> dict[str, np.ndarray]:
    gops = cache.entry(key).gop_of_p[p_rows]
    return {
        "iframe": cache.load(key, "iframe")[gops].astype(np.float64),
        "mv": cache.load(key, "mv")[p_rows].astype(np.float64),
        "residual": cache.load(key, "residual")[p_rows].astype(np.float64),
    }


def test_segment_positions_follow_tsn() -> None:
    # 23 P-frames, 3 segments: [0, 8), [8, 15), [15, 23); centres floor((2s + 1) 23 / 6)
    assert list(segment_positions(23, 3, None)) == [3, 11, 19]
    assert list(segment_positions(2, 3, None)) == [0, 1, 1]
    rng = np.random.default_rng(0)
    draws = np.stack([segment_positions(23, 3, rng) for _ in range(600)])
    for s, (begin, end) in enumerate([(0, 8), (8, 15), (15, 23)]):
        assert set(draws[:, s]) == set(range(begin, end))
    assert {tuple(segment_positions(1, 3, rng)) for _ in range(5)} == {(0, 0, 0)}


def test_multiscale_crops_use_coviar_sizes_inside_the_frame() -> None:
    rng = np.random.default_rng(1)
    sides = [int(48 * s) for s in (1.0, 0.875, 0.75, 0.66)]
    seen = set()
    for _ in range(400):
        box = multiscale_crop(rng, 48, 64)
        i, j = sides.index(box.height), sides.index(box.width)
        assert abs(i - j) <= 1
        assert 0 <= box.top <= 48 - box.height and 0 <= box.left <= 64 - box.width
        seen.add((i, j))
    assert len(seen) == 10


def test_normalisation_tables_reproduce_coviar_for_every_stored_value() -> None:
    values = np.arange(-128, 128, dtype=np.float64)
    raw = {  # [1, 256, 1, C]: every stored value once per channel
        m: np.repeat(values[:, None] + offset, channels, axis=1)[None, :, None, :]
        for m, channels, offset in (("iframe", 3, 128.0), ("mv", 2, 0.0), ("residual", 3, 0.0))
    }
    scale = (-1.5, 0.5)
    expected = _coviar(raw, scale)
    for modality, stored in raw.items():
        table = normalisation(modality, scale if modality == "mv" else (1.0, 1.0))
        a, b, low, high = table.astype(np.float64)
        ours = np.clip(stored * a + b, low, high).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(ours, expected[modality], atol=1e-6)


def test_evaluation_clip_equals_centred_coviar_inputs(cached) -> None:
    samples, cache = cached
    dataset = ClipDataset(samples, cache, train=False, input_size=42)
    inputs, label = dataset[5]
    assert label == samples[5].label
    assert {k: tuple(v.shape) for k, v in inputs.items()} == {
        "iframe": (3, 3, 42, 42), "mv": (3, 2, 42, 42), "residual": (3, 3, 42, 42)
    }
    plan = dataset.plan(5)
    assert list(plan.p_rows) == [3, 11, 19] and plan.flip is False
    # centred square of side int(0.875 * 48) = 42 at (3, 11); no resize needed
    expected = _coviar({k: v[:, 3:45, 11:53] for k, v in _raw(cache, samples[5].video, plan.p_rows).items()})
    for modality, x in inputs.items():
        assert x.dtype == torch.float32 and x.is_contiguous()
        np.testing.assert_allclose(x.numpy(), expected[modality], atol=1e-5)


def test_resizing_scales_motion_with_the_image(cached) -> None:
    samples, cache = cached
    inputs, _ = ClipDataset(samples, cache, train=False, input_size=21)[2]
    # halving a 42 x 42 crop exactly: bilinear (align_corners=False) averages 2 x 2 blocks
    raw = _raw(cache, samples[2].video, np.array([3, 11, 19]))
    expected = _coviar({k: v[:, 3:45, 11:53] for k, v in raw.items()}, mv_scale=(0.5, 0.5))
    for modality, x in inputs.items():
        pooled = expected[modality].reshape(*expected[modality].shape[:2], 21, 2, 21, 2).mean(axis=(3, 5))
        np.testing.assert_allclose(x.numpy(), pooled, atol=1e-5)


def test_training_clip_applies_its_plan_with_one_crop_and_flip(cached) -> None:
    samples, cache = cached
    dataset = ClipDataset(samples, cache, train=True, input_size=48, scales=(1.0,), seed=3)
    flips = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in (0, 9):
            plan = dataset.plan(index)
            box = plan.box
            assert (box.height, box.width, box.top) == (48, 48, 0)
            full = _raw(cache, samples[index].video, plan.p_rows)
            raw = {k: v[:, :, box.left : box.left + 48] for k, v in full.items()}
            if plan.flip:
                raw = {k: v[:, :, ::-1] for k, v in raw.items()}
                raw["mv"] = raw["mv"] * np.array([-1.0, 1.0])
            expected = _coviar(raw)
            inputs, _ = dataset[index]
            for modality, x in inputs.items():
                np.testing.assert_allclose(x.numpy(), expected[modality], atol=1e-5)
            flips.add(plan.flip)
    assert flips == {True, False}


def _same_plan(a, b) -> bool:
    same_rows = np.array_equal(a.p_rows, b.p_rows) and np.array_equal(a.gop_rows, b.gop_rows)
    return same_rows and (a.box, a.flip) == (b.box, b.flip)


def test_training_draws_depend_on_seed_epoch_and_index_only(cached) -> None:
    samples, cache = cached
    everything = ClipDataset(samples, cache, train=True, input_size=32, seed=7)
    iframe_only = ClipDataset(samples, cache, ("iframe",), train=True, input_size=32, seed=7)
    for dataset in (everything, iframe_only):
        dataset.set_epoch(2)
    assert _same_plan(everything.plan(4), iframe_only.plan(4))
    # the same positions, crop and flip; values agree to float rounding (the resize kernel
    # vectorises differently for 3 and 8 channels)
    torch.testing.assert_close(everything[4][0]["iframe"], iframe_only[4][0]["iframe"], atol=1e-5, rtol=0)
    first = everything[4][0]["mv"].clone()
    everything.set_epoch(3)
    assert not torch.equal(everything[4][0]["mv"], first)
    everything.set_epoch(2)
    assert torch.equal(everything[4][0]["mv"], first)

    torch.manual_seed(0)
    in_process = [everything[i] for i in range(len(everything))]
    loader = DataLoader(everything, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    for b, (inputs, labels) in enumerate(batches):
        for j in range(len(labels)):
            reference, label = in_process[4 * b + j]
            assert int(labels[j]) == label
            for modality in ("iframe", "mv", "residual"):
                assert torch.equal(inputs[modality][j], reference[modality])


def test_bad_dataset_options_are_refused(cached) -> None:
    samples, cache = cached
    with pytest.raises(ConfigError, match="modalities must be distinct"):
        ClipDataset(samples, cache, ("iframe", "flow"), train=True)
    with pytest.raises(ConfigError, match="modalities must be distinct"):
        ClipDataset(samples, cache, ("mv", "mv"), train=True)
    with pytest.raises(ConfigError, match="crop scales"):
        ClipDataset(samples, cache, train=True, scales=(1.2,))
