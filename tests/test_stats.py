"""flatkd.stats against direct, independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flatkd.stats import (
    chance_interval,
    class_report,
    compare_paired,
    mcnemar_p,
    paired_bootstrap,
    seed_summary,
    student_t_quantile,
    wilson_interval,
)


def _index_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The textbook paired bootstrap: resample clip indices, score both methods on the draw."""
    generator = np.random.default_rng(seed)
    draws = generator.integers(0, a.size, size=(resamples, a.size))
    return a[draws].mean(axis=1) - b[draws].mean(axis=1)


def test_multinomial_bootstrap_matches_index_resampling() -> None:
    generator = np.random.default_rng(3)
    a = generator.random(200) < 0.7
    b = np.where(generator.random(200) < 0.8, a, ~a)
    interval = paired_bootstrap(a, b, resamples=20_000, seed=1)
    direct = np.quantile(_index_bootstrap(a.astype(float), b.astype(float), 20_000, 2), [0.025, 0.975])
    assert interval.estimate == pytest.approx(a.mean() - b.mean())
    assert interval.low == pytest.approx(direct[0], abs=0.006)
    assert interval.high == pytest.approx(direct[1], abs=0.006)


def test_identical_methods_give_a_zero_width_interval_and_p_one() -> None:
    flags = np.array([True, False, True, True])
    comparison = compare_paired(flags, flags)
    assert (comparison.difference.low, comparison.difference.high) == (0.0, 0.0)
    assert comparison.p_value == 1.0 and not comparison.difference.excludes(0.0)


def test_mcnemar_matches_the_binomial_sum() -> None:
    for plus, minus in [(10, 2), (3, 3), (0, 7), (40, 25)]:
        total = plus + minus
        tail = sum(math.comb(total, k) for k in range(min(plus, minus) + 1)) / 2**total
        assert mcnemar_p(plus, minus) == pytest.approx(min(1.0, 2 * tail))
    assert mcnemar_p(0, 0) == 1.0


@pytest.mark.parametrize(("dof", "expected"), [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (29, 2.045230)])
def test_student_t_quantile_matches_tables(dof: int, expected: float) -> None:
    assert student_t_quantile(0.975, dof) == pytest.approx(expected, abs=1e-5)
    assert student_t_quantile(0.025, dof) == pytest.approx(-expected, abs=1e-5)


def test_seed_summary_interval_and_single_seed() -> None:
    summary = seed_summary([3.0, 5.0, 4.0, 6.0])
    half = 3.182446 * np.std([3.0, 5.0, 4.0, 6.0], ddof=1) / 2
    assert (summary.mean, summary.interval.low, summary.interval.high) == pytest.approx((4.5, 4.5 - half, 4.5 + half), abs=1e-5)
    single = seed_summary([2.0])
    assert single.n == 1 and math.isnan(single.sd) and "n=1" in single.format()


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="same clips"):
        paired_bootstrap([1, 0, 1], [1, 0])


def test_wilson_interval_matches_the_published_values() -> None:
    # Brown, Cai & DasGupta (2001) / Newcombe (1998) Table I: 8 of 10 -> [0.4902, 0.9433]
    interval = wilson_interval(8, 10)
    assert interval.estimate == 0.8
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10).low == pytest.approx(0.0) and wilson_interval(10, 10).high == pytest.approx(1.0)
    # much narrower with many clips: 480 clips at 80% -> about +-3.6 points
    wide = wilson_interval(384, 480)
    assert 0.034 < (wide.high - wide.low) / 2 < 0.037


def test_chance_interval_is_the_central_binomial_range() -> None:
    for n, p in ((12, 0.25), (200, 0.01), (101, 0.5)):
        pmf = np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
        cdf = np.cumsum(pmf)
        low, high = int(np.argmax(cdf >= 0.025)), int(np.argmax(cdf >= 0.975))
        interval = chance_interval(n, p)
        assert (interval.estimate, interval.low, interval.high) == pytest.approx((p, low / n, high / n))
    assert (chance_interval(5, 1.0).low, chance_interval(5, 0.0).high) == (1.0, 0.0)
    big = chance_interval(3783, 1 / 101)  # UCF-101's test list: no overflow
    assert 0 < big.low < 1 / 101 < big.high < 0.02
    with pytest.raises(ValueError):
        chance_interval(0, 0.5)


def test_class_report_counts_by_class_and_judges_chance() -> None:
    labels = [0, 0, 0, 0, 1, 1, 2, 2]
    report = class_report([0, 0, 0, 1, 1, 1, 0, 0], labels, classes=4)
    assert report.confusion.tolist() == [[3, 1, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    assert (report.n, report.correct, report.predicted_classes) == (8, 5, [0, 1])
    per_class = report.per_class
    assert per_class[:3].tolist() == [0.75, 1.0, 0.0] and math.isnan(per_class[3])  # class 3 has no clip
    assert (report.uniform_chance, report.majority_rate, report.chance.estimate) == (0.25, 0.5, 0.5)
    assert not report.single_class and report.at_chance  # 5 of 8 is no better than always answering 0
    many = class_report(np.repeat(np.arange(4), 25), np.repeat(np.arange(4), 25), classes=4)
    assert not many.at_chance and many.accuracy.estimate == 1.0
    constant = class_report([2] * 100, np.repeat(np.arange(4), 25), classes=4)
    assert constant.single_class and constant.at_chance
    with pytest.raises(ValueError, match="classes must lie in 0..3"):
        class_report([4], [0], classes=4)
