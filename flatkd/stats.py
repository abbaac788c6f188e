"""Paired statistics for comparing methods on the same test clips, and spreads over seeds.

Two classifiers scored on the same n clips are compared by the difference of their accuracies,
``Δ = acc(a) - acc(b)``. Its uncertainty comes from which clips happened to be in the test set,
so it is resampled *paired*: a bootstrap draws n clips with replacement and scores both methods on
the same draw (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13, percentile
interval). Only three kinds of clip matter — a right and b wrong (+1), a wrong and b right (-1),
both the same (0) — so a resample is a multinomial draw of those three counts, which has exactly
the distribution of index resampling and costs O(1) per resample instead of O(n).

McNemar's exact test (McNemar, Psychometrika 1947; the exact binomial form of Fagerland, Lydersen
& Laake, BMC Med. Res. Methodol. 2013) gives the two-sided p-value of "no difference" from the
discordant counts alone: with b clips +1 and c clips -1, ``p = min(1, 2 P(X <= min(b, c)))`` for
``X ~ Binomial(b + c, 1/2)``.

Across training seeds a quantity is summarised by its mean and a Student-t interval,
``mean ± t_{1-α/2, n-1} · sd / sqrt(n)``.

A single accuracy (k of n clips right) gets the Wilson score interval (Wilson, JASA 1927; Brown,
Cai & DasGupta, Statist. Sci. 2001 recommend it over the Wald interval for small n):
``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n``.

Whether a classifier learned anything is judged against *chance*: a classifier without
information scores ``p0 = max(1/K, majority-class rate)`` on average (guessing uniformly, or
always answering the commonest test class), and on n clips its number of right answers is
``Binomial(n, p0)``. :func:`chance_interval` is the central 95% range of that count over n
(exact binomial quantiles); an accuracy inside it, or below it, is indistinguishable from chance
(:class:`ClassReport`, which also holds the confusion matrix and per-class accuracy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "ClassReport",
    "Interval",
    "PairedComparison",
    "SeedSummary",
    "compare_paired",
    "chance_interval",
    "class_report",
    "mcnemar_p",
    "paired_bootstrap",
    "seed_summary",
    "student_t_quantile",
    "pairwise_agreement",
    "top_class_agreement",
    "wilson_interval",
]


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval at ``level`` (e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside the interval (the difference is resolved)."""
        return value < self.low or value > self.high

    def format(self, scale: float = 1.0, digits: int = 1, signed: bool = True) -> str:
        """``+3.3 [-1.1, +7.8]`` with values multiplied by ``scale`` (100 for points)."""
        spec = f"{'+' if signed else ''}.{digits}f"
        return (
            f"{self.estimate * scale:{spec}} [{self.low * scale:{spec}}, {self.high * scale:{spec}}]"
        )


@dataclass(frozen=True)
class PairedComparison:
    """Method a against method b on the same clips: accuracy difference a - b."""

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval
    a_only: int
    b_only: int
    p_value: float

    def row(self, scale: float = 100.0) -> dict[str, float | int | str]:
        """A flat table row (accuracies and the difference in points at ``scale=100``)."""
        return {
            "n": self.n,
            "accuracy_a": self.accuracy_a * scale,
            "accuracy_b": self.accuracy_b * scale,
            "difference": self.difference.estimate * scale,
            "ci_low": self.difference.low * scale,
            "ci_high": self.difference.high * scale,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "mcnemar_p": self.p_value,
        }


def _as_correct(values: Sequence[bool] | np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"expected one correctness flag per clip, got shape {array.shape}")
    return array.astype(bool)


def _discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, int]:
    a, b = _as_correct(correct_a), _as_correct(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same clips: {a.shape[0]} vs {b.shape[0]}")
    if a.size == 0:
        raise ValueError("paired comparison needs at least one clip")
    return int(a.size), int(np.sum(a & ~b)), int(np.sum(~a & b))


def paired_bootstrap(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``acc(a) - acc(b)`` over clips resampled in pairs.

    >>> paired_bootstrap([1, 1, 1, 0] * 25, [1, 0, 1, 0] * 25).format(scale=100)
    '+25.0 [+17.0, +34.0]'
    """
    n, plus, minus = _discordant(np.asarray(correct_a), np.asarray(correct_b))
    generator = np.random.default_rng(seed)
    counts = generator.multinomial(n, [plus / n, minus / n, 1 - (plus + minus) / n], size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return Interval((plus - minus) / n, float(low), float(high), level)


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts.

    >>> round(mcnemar_p(10, 2), 4)
    0.0386
    """
    total, smaller = a_only + b_only, min(a_only, b_only)
    if total == 0:
        return 1.0
    tail = Fraction(sum(math.comb(total, k) for k in range(smaller + 1)), 2**total)
    return float(min(Fraction(1), 2 * tail))


def compare_paired(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Accuracies, the paired bootstrap interval of their difference and McNemar's p."""
    a, b = _as_correct(np.asarray(correct_a)), _as_correct(np.asarray(correct_b))
    n, plus, minus = _discordant(a, b)
    return PairedComparison(
        n=n,
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        difference=paired_bootstrap(a, b, resamples, level, seed),
        a_only=plus,
        b_only=minus,
        p_value=mcnemar_p(plus, minus),
    )


def _student_t_cdf(t: float, dof: int) -> float:
    """CDF of Student's t with integer ``dof`` (Abramowitz & Stegun 26.7.3-26.7.4, finite sums)."""
    theta = math.atan(t / math.sqrt(dof))
    sin, cos = math.sin(theta), math.cos(theta)
    if dof % 2:  # odd: A = (2θ + 2 sinθ (cosθ + (2/3) cos³θ + ...)) / π
        term, total = cos, cos if dof > 1 else 0.0
        for k in range(3, dof - 1, 2):
            term *= cos * cos * (k - 1) / k
            total += term
        a = (2 * theta + 2 * sin * total) / math.pi
    else:  # even: A = sinθ (1 + (1/2) cos²θ + (1·3)/(2·4) cos⁴θ + ...)
        term = total = 1.0
        for k in range(2, dof - 1, 2):
            term *= cos * cos * (k - 1) / k
            total += term
        a = sin * total
    return (1 + a) / 2


def student_t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t with integer ``dof >= 1`` (bisection on the exact CDF).

    >>> round(student_t_quantile(0.975, 2), 4)
    4.3027
    """
    if dof < 1 or not 0 < probability < 1:
        raise ValueError(f"need dof >= 1 and 0 < p < 1, got dof={dof}, p={probability}")
    low, high = -1e6, 1e6
    for _ in range(200):
        middle = (low + high) / 2
        if _student_t_cdf(middle, dof) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class SeedSummary:
    """Mean, standard deviation and Student-t interval of one quantity over seeds."""

    n: int
    mean: float
    sd: float
    interval: Interval

    def format(self, digits: int = 3) -> str:
        """``4.01 ± 0.12 (n=3)``: mean ± sd; a single value has no spread."""
        if self.n < 2:
            return f"{self.mean:.{digits}g} (n=1)"
        return f"{self.mean:.{digits}g} ± {self.sd:.{digits - 1}g} (n={self.n})"


def seed_summary(values: Sequence[float], level: float = 0.95) -> SeedSummary:
    """Mean ± t-interval of ``values`` (one per seed); one value gives a degenerate interval.

    >>> seed_summary([1.0, 2.0, 3.0]).interval.format(digits=2, signed=False)
    '2.00 [-0.48, 4.48]'
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("a seed summary needs at least one value")
    mean = float(array.mean())
    if array.size < 2:
        return SeedSummary(1, mean, math.nan, Interval(mean, math.nan, math.nan, level))
    sd = float(array.std(ddof=1))
    half = student_t_quantile(1 - (1 - level) / 2, array.size - 1) * sd / math.sqrt(array.size)
    return SeedSummary(int(array.size), mean, sd, Interval(mean, mean - half, mean + half, level))


#: the standard normal quantile of 0.975 (a two-sided 95% interval)
Z_95 = 1.959963984540054


def wilson_interval(correct: int, total: int) -> Interval:
    """The accuracy ``correct / total`` with its Wilson score 95% interval (module docstring)."""
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got {correct} of {total}")
    p, z2 = correct / total, Z_95**2
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z_95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total**2)) / (1 + z2 / total)
    return Interval(estimate=p, low=max(0.0, centre - half), high=min(1.0, centre + half))


def top_class_agreement(first: Sequence[int] | np.ndarray, second: Sequence[int] | np.ndarray) -> float:
    """Fraction of clips on which two classifiers' predicted classes (``[N]`` each) coincide,
    right or wrong."""
    a, b = np.asarray(first), np.asarray(second)
    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise ValueError(f"need two equal-length 1-D predictions, got shapes {a.shape} and {b.shape}")
    return float(np.mean(a == b))


def pairwise_agreement(predictions: Mapping[str, Sequence[int] | np.ndarray]) -> dict[tuple[str, str], float]:
    """:func:`top_class_agreement` of every pair of the named classifiers, in their order."""
    return {
        (a, b): top_class_agreement(predictions[a], predictions[b])
        for a, b in itertools.combinations(predictions, 2)
    }


def chance_interval(n: int, p: float, level: float = 0.95) -> Interval:
    """The central ``level`` range of the accuracy of a classifier right with probability ``p``
    on each of ``n`` clips: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
    ``Binomial(n, p)``, over ``n`` (module docstring).

    >>> chance_interval(12, 0.25).format(scale=100, signed=False)
    '25.0 [0.0, 50.0]'
    """
    if n < 1 or not 0 <= p <= 1:
        raise ValueError(f"need n >= 1 and 0 <= p <= 1, got n={n}, p={p}")
    k = np.arange(n + 1)
    if p in (0.0, 1.0):
        pmf = (k == round(p * n)).astype(float)
    else:
        log_choose = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
        pmf = np.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))
    cdf = np.cumsum(pmf) / pmf.sum()
    tail = (1 - level) / 2
    low, high = (min(n, int(np.searchsorted(cdf, q - 1e-12))) for q in (tail, 1 - tail))
    return Interval(p, low / n, high / n, level)


@dataclass(frozen=True)
class ClassReport:
    """One classifier's predictions on n clips of K classes, by class: ``confusion[t, q]`` counts
    the clips of true class t predicted as q."""

    confusion: np.ndarray

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> Interval:
        """The accuracy with its Wilson 95% interval."""
        return wilson_interval(self.correct, self.n)

    @property
    def per_class(self) -> np.ndarray:
        """Accuracy (recall) of every true class; NaN for a class without clips."""
        support = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / support, np.nan)

    @property
    def uniform_chance(self) -> float:
        """1/K: the expected accuracy of a uniform guess."""
        return 1 / self.confusion.shape[0]

    @property
    def majority_rate(self) -> float:
        """The share of the commonest true class: the accuracy of always predicting it."""
        return float(self.confusion.sum(axis=1).max() / self.n)

    @property
    def chance(self) -> Interval:
        """:func:`chance_interval` at ``max(1/K, majority rate)``."""
        return chance_interval(self.n, max(self.uniform_chance, self.majority_rate))

    @property
    def predicted_classes(self) -> list[int]:
        """The classes predicted for at least one clip."""
        return [int(q) for q in np.flatnonzero(self.confusion.sum(axis=0))]

    @property
    def single_class(self) -> bool:
        """Whether every clip got the same prediction."""
        return len(self.predicted_classes) == 1

    @property
    def at_chance(self) -> bool:
        """Whether the accuracy lies within (or below) the 95% range of chance."""
        return self.correct / self.n <= self.chance.high


def class_report(predicted: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, classes: int) -> ClassReport:
    """The :class:`ClassReport` of predicted classes against true ``labels`` (``[N]`` each, in
    ``0..classes-1``).

    >>> report = class_report([0, 0, 0, 0], [0, 1, 2, 0], classes=3)
    >>> report.per_class.tolist(), report.single_class, report.at_chance
    ([1.0, 0.0, 0.0], True, True)
    """
    q, t = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if q.shape != t.shape or q.ndim != 1 or not q.size:
        raise ValueError(f"need equal-length 1-D predictions and labels, got shapes {q.shape} and {t.shape}")
    if min(q.min(), t.min()) < 0 or max(q.max(), t.max()) >= classes:
        raise ValueError(f"classes must lie in 0..{classes - 1}")
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (t, q), 1)
    return ClassReport(confusion)
