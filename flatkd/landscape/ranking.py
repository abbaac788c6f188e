"""Ordering the modality networks from the flattest minimum to the sharpest, and saying when the
data cannot.

Each measurement of one network exit on one data subset is a :class:`FlatnessRecord`; a network
is measured on several disjoint subsets of its training clips, and may come in several training
runs (seeds). The ranking summarises every metric per modality (:func:`summarise`): the mean over
subsets per run, then over runs, with a 95% Student-t interval from the spread **over runs** when
there are two or more, else **over subsets** (which includes the Hutchinson probes' noise: each
subset has its own probes), else none. The metrics (larger = sharper):

* ``adaptive_trace`` :math:`\\operatorname{tr}(|\\theta| H |\\theta|)` and
  ``adaptive_top_eigenvalue`` :math:`\\lambda_{\\max}(|\\theta| H |\\theta|)`: invariant to
  function-preserving rescalings (:mod:`.estimators.adaptive`). The adaptive trace is the
  **primary metric**;
* ``trace`` and ``top_eigenvalue``: the raw curvature (Dinh et al., ICML 2017: not invariant;
  compare networks trained the same way). The Lanczos residual bound of a top eigenvalue
  (``top_eigenvalue_bound``) is a numerical bound, not an uncertainty, and is never ranked on;
* ``trace_per_parameter``, for networks of different sizes;
* ``adaptive_epsilon_sharpness``, ``adaptive_rho_sharpness`` (invariant) and Keskar's
  ``epsilon_sharpness``, lower bounds from a few ascent steps (:mod:`.surfaces.sharpness`);
* ``mean_loss_increase`` within :math:`\\rho` of a filter-normalised plane (first subset only).

A pair of modalities is **resolved** when the intervals of the primary metric are disjoint. A
network is **not measurable** (:func:`convergence_problems`) when its accuracy on the measured
clips is below twice chance, or when a gradient step would still lower its loss by more than 10%
under the local quadratic model, :math:`\\|g\\|^4 / (2 g^\\top H g) > 0.1\\,L` (not at a minimum;
an underfit plateau looks flat). PKD visits teachers from the sharpest minimum to the flattest;
its chain (:attr:`Ranking.chain`) is the measured order reversed only when every pair is resolved
and every network measurable, otherwise the paper's order, MV -> residual -> I-frame
(:data:`flatkd.landscape.chain.PAPER_CHAIN`), with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from flatkd.landscape.chain import PAPER_CHAIN, Chain
from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.settings import METRICS, PRIMARY_METRIC
from flatkd.stats import Interval, seed_summary

#: metric -> the record field of its probe standard error on one subset (Hutchinson estimates)
PROBE_STDERR = {"trace": "trace_stderr", "adaptive_trace": "adaptive_trace_stderr"}
#: a network is not measurable below this multiple of chance accuracy on the measured clips
NEAR_CHANCE = 2.0
#: ... or when a gradient step would lower its loss by more than this fraction (quadratic model)
MAX_QUADRATIC_DECREASE = 0.1


@dataclass(frozen=True)
class FlatnessRecord:
    """The flatness metrics of one network exit on one data subset (one row of ``flatness.csv``).

    ``run`` names the training run (seed) the network comes from, ``subset`` the disjoint subset of
    its training clips and ``clips`` its size. ``classes`` gives chance accuracy; ``gradient_norm`` and
    ``quadratic_decrease`` (:math:`\\|g\\|^4 / (2 g^\\top H g)`, infinite when
    :math:`g^\\top H g \\le 0`) say how far from a minimum it is. ``top_eigenvalue_bound`` is the
    Lanczos residual bound (numerical, not an uncertainty); ``trace_stderr`` and
    ``adaptive_trace_stderr`` the probes' standard errors on this subset. The sharpness fields are
    ``None`` when surfaces were skipped, ``mean_loss_increase`` also on subsets after the first.
    """

    modality: str
    exit: int
    parameters: int
    loss: float
    accuracy: float | None
    top_eigenvalue: float
    top_eigenvalue_bound: float
    trace: float
    trace_stderr: float
    adaptive_top_eigenvalue: float
    adaptive_trace: float
    adaptive_trace_stderr: float
    mean_loss_increase: float | None
    epsilon_sharpness: float | None
    adaptive_epsilon_sharpness: float | None
    adaptive_rho_sharpness: float | None
    classes: int
    gradient_norm: float
    quadratic_decrease: float
    hvps: int
    clips: int
    subset: int = 0
    run: str = ""

    @property
    def trace_per_parameter(self) -> float:
        return self.trace / self.parameters


def convergence_problems(records: Sequence[FlatnessRecord]) -> list[str]:
    """Why the network measured by ``records`` (its subsets and runs) is not converged enough to be
    ranked (module docstring), one line per kind of problem; empty if it is."""
    problems = []
    chance = 1 / records[0].classes
    near = [r.accuracy for r in records if r.accuracy is not None and r.accuracy < NEAR_CHANCE * chance]
    if near:
        problems.append(
            f"accuracy near chance on {len(near)} of {len(records)} subsets (at most {max(near):.1%}; "
            f"chance {chance:.1%})"
        )
    steep = [r for r in records if r.quadratic_decrease > MAX_QUADRATIC_DECREASE * r.loss]
    if steep:
        worst = max(r.quadratic_decrease / r.loss for r in steep)
        problems.append(
            f"not at a minimum on {len(steep)} of {len(records)} subsets (a gradient step would lower the loss by "
            f"up to {'an unbounded amount' if math.isinf(worst) else f'{worst:.0%}'}; gradient norm up to "
            f"{max(r.gradient_norm for r in steep):.3g})"
        )
    return problems


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one modality over subsets and runs (module docstring).

    ``interval`` is ``None`` when neither runs nor subsets vary; ``spread_over`` says which did:
    ``"runs"``, ``"subsets"`` or ``"none"``. ``subset_sd`` is the pooled within-run standard
    deviation over subsets, ``run_sd`` the standard deviation of the per-run means,
    ``probe_stderr`` the root-mean-square probe standard error of one subset's estimate (traces
    only; ``nan`` otherwise): the part of ``subset_sd`` the probes alone explain.
    """

    mean: float
    interval: Interval | None
    spread_over: str
    subset_sd: float
    run_sd: float
    subsets: int
    runs: int
    probe_stderr: float = math.nan

    def separated_from(self, other: MetricSummary) -> bool:
        """Whether the two intervals are disjoint (a missing interval never is)."""
        if self.interval is None or other.interval is None:
            return False
        return self.interval.high < other.interval.low or other.interval.high < self.interval.low


def summarise(records: Sequence[FlatnessRecord], metric: str) -> MetricSummary | None:
    """``metric`` over the records of one modality (module docstring); ``None`` if never computed."""
    by_run: dict[str, list[float]] = defaultdict(list)
    for record in records:
        value = getattr(record, metric)
        if value is not None and math.isfinite(value):
            by_run[record.run].append(float(value))
    if not by_run:
        return None
    run_means = [float(np.mean(values)) for values in by_run.values()]
    within = [float(np.var(values, ddof=1)) for values in by_run.values() if len(values) > 1]
    subset_sd = math.sqrt(float(np.mean(within))) if within else math.nan
    subsets = max(len(values) for values in by_run.values())
    if len(run_means) > 1:
        summary, spread_over = seed_summary(run_means), "runs"
    elif subsets > 1:
        summary, spread_over = seed_summary(next(iter(by_run.values()))), "subsets"
    else:
        summary, spread_over = seed_summary(run_means), "none"
    errors = [getattr(r, PROBE_STDERR[metric]) for r in records] if metric in PROBE_STDERR else []
    return MetricSummary(
        probe_stderr=math.sqrt(float(np.mean(np.square(errors)))) if errors else math.nan,
        mean=float(np.mean(run_means)),
        interval=None if spread_over == "none" else summary.interval,
        spread_over=spread_over,
        subset_sd=subset_sd,
        run_sd=summary.sd if len(run_means) > 1 else math.nan,
        subsets=subsets,
        runs=len(run_means),
    )


@dataclass(frozen=True)
class Ranking:
    """Modalities from the flattest to the sharpest by ``metric`` and how firmly that holds.

    ``summaries[metric][modality]`` for every metric computed; ``unresolved`` the pairs (flatter,
    sharper by the means) whose intervals overlap; ``unmeasurable`` the networks that failed
    :func:`convergence_problems`, with the reasons.
    """

    metric: str
    flattest_first: tuple[str, ...]
    summaries: Mapping[str, Mapping[str, MetricSummary]]
    unresolved: tuple[tuple[str, str], ...]
    unmeasurable: Mapping[str, tuple[str, ...]]
    warnings: tuple[str, ...]

    @property
    def scores(self) -> dict[str, float]:
        """The primary metric's mean per modality."""
        return {m: self.summaries[self.metric][m].mean for m in self.flattest_first}

    @property
    def resolved(self) -> bool:
        """Every pair resolved and every network measurable."""
        return not self.unresolved and not self.unmeasurable

    @property
    def chain(self) -> Chain:
        """PKD's teacher order (sharpest first): measured where resolved, else the paper's."""
        measured = tuple(reversed(self.flattest_first))
        if self.resolved:
            order, source = measured, "measured"
            reason = f"every pair of modalities is resolved by {self.metric} (95% intervals disjoint)"
        else:
            order, source = tuple(m for m in PAPER_CHAIN if m in measured), "paper"
            causes = [f"{a} vs {b} not resolved by {self.metric}" for a, b in self.unresolved]
            causes += [f"{m} not measurable ({'; '.join(why)})" for m, why in self.unmeasurable.items()]
            reason = "the paper's order (MV -> residual -> I-frame) because " + ", ".join(causes)
        return Chain(order, self.metric, self.scores, self.warnings, measured=measured, source=source, reason=reason)


def flatness_table(records: Sequence[FlatnessRecord]) -> pd.DataFrame:
    """One row per record, the derived per-parameter trace included (``flatness.csv``)."""
    return pd.DataFrame([{**asdict(r), "trace_per_parameter": r.trace_per_parameter} for r in records])


def summary_table(ranking: Ranking) -> pd.DataFrame:
    """One row per modality and metric (``flatness_summary.csv``): mean, 95% interval and spreads."""
    rows = []
    for metric, by_modality in ranking.summaries.items():
        for modality, s in by_modality.items():
            rows.append({
                "modality": modality, "metric": metric, "invariant": METRICS[metric], "mean": s.mean,
                "ci_low": s.interval.low if s.interval else math.nan,
                "ci_high": s.interval.high if s.interval else math.nan,
                "spread_over": s.spread_over, "subset_sd": s.subset_sd, "probe_stderr": s.probe_stderr,
                "run_sd": s.run_sd, "subsets": s.subsets, "runs": s.runs,
            })  # fmt: skip
    return pd.DataFrame(rows)


def rank_modalities(records: Sequence[FlatnessRecord], metric: str = PRIMARY_METRIC) -> Ranking:
    """Rank the modalities of ``records`` (one exit each; any number of subsets and runs) from the
    flattest to the sharpest by ``metric`` (module docstring)."""
    if metric not in METRICS:
        raise LandscapeInputError(f"unknown flatness metric {metric!r}: use one of {', '.join(METRICS)}")
    grouped: dict[str, list[FlatnessRecord]] = defaultdict(list)
    for record in records:
        grouped[record.modality].append(record)
    if len(grouped) < 2:
        raise LandscapeInputError("ranking needs at least two modality networks")
    if any(len({r.exit for r in group}) > 1 for group in grouped.values()):
        raise LandscapeInputError("rank one exit per modality (the same exit for each)")
    summaries = {
        name: by_modality
        for name in METRICS
        if len(by_modality := {m: s for m, group in grouped.items() if (s := summarise(group, name)) is not None})
        == len(grouped)
    }
    if metric not in summaries:
        raise LandscapeInputError(f"metric {metric!r} was not computed for every modality")
    primary = summaries[metric]
    order = sorted(primary, key=lambda m: primary[m].mean)
    unresolved = tuple(
        (a, b) for i, a in enumerate(order) for b in order[i + 1 :] if not primary[a].separated_from(primary[b])
    )
    unmeasurable = {m: tuple(why) for m, group in grouped.items() if (why := convergence_problems(group))}
    warnings = [f"{metric} does not resolve {a} vs {b}: {_shown(primary[a])} vs {_shown(primary[b])}" for a, b in unresolved]
    warnings += [f"{m} is not converged enough to be ranked: {'; '.join(why)}" for m, why in unmeasurable.items()]
    for other, by_modality in summaries.items():
        other_order = sorted(by_modality, key=lambda m: by_modality[m].mean)
        flipped = any(by_modality[a].mean > by_modality[b].mean for i, a in enumerate(order) for b in order[i + 1 :])
        if other != metric and flipped:  # ties are no disagreement
            warnings.append(f"{other} orders them {' < '.join(other_order)}, unlike {metric} ({' < '.join(order)})")
    return Ranking(metric, tuple(order), summaries, unresolved, unmeasurable, tuple(warnings))


def _shown(summary: MetricSummary) -> str:
    if summary.interval is None:
        return f"{summary.mean:.4g} (no interval)"
    return f"{summary.mean:.4g} [{summary.interval.low:.4g}, {summary.interval.high:.4g}]"
