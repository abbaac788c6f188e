"""The synthetic set's promise (families design): every modality alone is informative, late
fusion beats the best single one, and the modalities agree on their top class far above what
independent errors would."""

from __future__ import annotations

from pathlib import Path

import pytest

from flatkd.data.cache import CacheSettings, build_cache
from flatkd.data.dataset_splits import list_videos, open_dataset
from flatkd.data.sanity import modality_probe
from flatkd.data.synth import SynthSettings, generate_synthetic


@pytest.mark.slow
def test_each_modality_alone_is_informative_fusion_gains_and_modalities_agree(tmp_path: Path) -> None:
    settings = SynthSettings(
        classes=10, clips_per_class=20, frames=24, width=96, height=96, difficulty=0.3, seed=0
    )
    generate_synthetic(tmp_path, settings, jobs=2)
    build_cache(list_videos(tmp_path), tmp_path / "cache", CacheSettings(size=None), jobs=2)
    splits = open_dataset(tmp_path, split=1, val_fraction=0.0)
    assert (len(splits.train), len(splits.test)) == (140, 60)
    cache = tmp_path / "cache"
    probe = modality_probe(splits.train, splits.test, cache, splits.num_classes, input_size=84)
    accuracy, agreement = probe.accuracy(), probe.agreement()
    chance = 1 / splits.num_classes
    singles = {m: accuracy[m] for m in ("iframe", "mv", "residual")}
    assert all(a > chance + 0.2 for a in singles.values()), accuracy
    assert accuracy["fused"] > max(singles.values()), accuracy
    # two independent classifiers of accuracies a, b agree on about a*b + (1-a)(1-b)/(K-1)
    for (first, second), agreed in agreement.items():
        a, b = accuracy[first], accuracy[second]
        independent = a * b + (1 - a) * (1 - b) / (splits.num_classes - 1)
        # within two binomial standard errors of the 60 test clips (one clip is 1.7 points)
        error = 2 * (independent * (1 - independent) / len(splits.test)) ** 0.5
        assert agreed > independent - error, (first, second, agreed, independent)
