"""Carving a validation subset out of a training list: stratified by class, grouped by source.

Model selection (best epoch, WISE weights, thresholds) must never look at the test list, so a
held-out part of the training list serves instead. For every class, its training clips are
bucketed by ``Sample.group`` (UCF-101's ``gNN``, HMDB-51's source movie; a clip without a group is
its own bucket), the buckets are sorted by name and shuffled with a generator seeded by
``(seed, label)``, and whole buckets move to validation until the class has at least
``round(fraction * n_class)`` validation clips. At least one bucket of every class stays in
training, so a class with a single group gets no validation clips (logged); when every class has
a single group, the split is refused up front with the reason (no validation fraction could help,
and training would stop at its first epoch on an empty validation split). The result depends only on the set of
samples, the fraction and the seed, not on the order of the list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from flatkd.data.splits import Sample
from flatkd.errors import ConfigError

log = logging.getLogger(__name__)


def carve_validation(
    train: Sequence[Sample], fraction: float, seed: int = 0
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """Split ``train`` into (training, validation) as described in the module docstring.

    Both keep the order of ``train``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {fraction}")
    by_class: dict[int, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for sample in train:
        by_class[sample.label][sample.group or sample.video].append(sample)
    held_out: set[str] = set()
    for label, buckets in sorted(by_class.items()):
        target = round(fraction * sum(len(b) for b in buckets.values()))
        if target == 0:
            continue
        if len(buckets) < 2:
            log.warning("class %d has one group of training clips: none of them goes to validation", label)
            continue
        names = sorted(buckets)
        order = np.random.default_rng([seed, label]).permutation(len(names))
        taken = 0
        for i in order[:-1]:
            if taken >= target:
                break
            held_out.update(s.video for s in buckets[names[i]])
            taken += len(buckets[names[i]])
    if fraction > 0 and by_class and all(len(buckets) < 2 for buckets in by_class.values()):
        raise ConfigError(
            "no clip can go to validation: every class's training clips come from a single group (UCF-101's"
            " gNN, HMDB-51's source movie), and a group is never split; add videos of other groups, group"
            " them differently (`flatkd data lists --group REGEX`) or, for `flatkd data synth`, raise"
            " --clips-per-class or lower --clips-per-group"
        )
    return (
        tuple(s for s in train if s.video not in held_out),
        tuple(s for s in train if s.video in held_out),
    )
