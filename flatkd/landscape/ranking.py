"""Ordering the modality networks from the flattest minimum to the sharpest.

Each network (or exit) is summarised by a :class:`FlatnessRecord`. The ranking sorts by one
**primary metric**, the Hessian trace by default, ascending (smaller = flatter), and checks it:

* the **trace** :math:`\\operatorname{tr} H = \\sum_i \\lambda_i` sums the curvature over all
  directions; its estimate is unbiased with a standard error (:mod:`.estimators.spectrum`), so the ranking can
  say when two networks are not told apart. This is the primary metric;
* the **top eigenvalue** :math:`\\lambda_{\\max}` (sharpest single direction), with its error
  estimate;
* the **trace per parameter**, for networks of different sizes (the trace grows with the number of
  parameters);
* the **mean loss increase** within radius :math:`\\rho` of a filter-normalised plane and
  **epsilon-sharpness** (:mod:`.surfaces.sharpness`), reparametrisation-aware views without intervals.

Warnings are raised when neighbours in the primary ranking have overlapping intervals
(value :math:`\\pm z` standard errors, :math:`z = 1.96` by default, ~95%), and when another metric
puts some pair of modalities the other way round (ties do not count). Curvature is not invariant
to reparametrisation (Dinh et al., "Sharp minima can generalize for deep nets", ICML 2017):
compare networks trained the same way.

PKD visits teachers from the sharpest minimum to the flattest, so the distillation chain is the
ranking reversed (``chain.json``, see :mod:`flatkd.landscape.chain`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from flatkd.landscape.chain import Chain
from flatkd.landscape.errors import LandscapeInputError

#: metric name -> (record field, its uncertainty field or None); larger values are sharper
METRICS: dict[str, tuple[str, str | None]] = {
    "trace": ("trace", "trace_stderr"),
    "top_eigenvalue": ("top_eigenvalue", "top_eigenvalue_error"),
    "trace_per_parameter": ("trace_per_parameter", "trace_per_parameter_stderr"),
    "mean_loss_increase": ("mean_loss_increase", None),
    "epsilon_sharpness": ("epsilon_sharpness", None),
}
PRIMARY_METRIC = "trace"


@dataclass(frozen=True)
class FlatnessRecord:
    """The flatness metrics of one network exit (one row of ``flatness.csv``).

    ``mean_loss_increase`` and ``epsilon_sharpness`` are ``None`` when surfaces were skipped.
    """

    modality: str
    exit: int
    parameters: int
    loss: float
    accuracy: float | None
    top_eigenvalue: float
    top_eigenvalue_error: float
    trace: float
    trace_stderr: float
    mean_loss_increase: float | None
    epsilon_sharpness: float | None
    hvps: int

    @property
    def trace_per_parameter(self) -> float:
        return self.trace / self.parameters

    @property
    def trace_per_parameter_stderr(self) -> float:
        return self.trace_stderr / self.parameters


@dataclass(frozen=True)
class Ranking:
    """Modalities from the flattest to the sharpest by ``metric``, with their scores and the
    warnings about how firmly the data supports the order."""

    metric: str
    flattest_first: tuple[str, ...]
    scores: dict[str, float]
    warnings: tuple[str, ...]

    @property
    def chain(self) -> Chain:
        """PKD's teacher order (sharpest first) with this ranking's metric, scores and warnings."""
        return Chain(tuple(reversed(self.flattest_first)), self.metric, self.scores, self.warnings)


def flatness_table(records: Sequence[FlatnessRecord]) -> pd.DataFrame:
    """One row per record, the derived per-parameter trace included (``flatness.csv``)."""
    rows = [
        {
            **asdict(r),
            "trace_per_parameter": r.trace_per_parameter,
            "trace_per_parameter_stderr": r.trace_per_parameter_stderr,
        }
        for r in records
    ]
    return pd.DataFrame(rows)


def rank_modalities(records: Sequence[FlatnessRecord], metric: str = PRIMARY_METRIC, *, z: float = 1.96) -> Ranking:
    """Rank one record per modality from the flattest to the sharpest by ``metric``."""
    if metric not in METRICS:
        raise LandscapeInputError(f"unknown flatness metric {metric!r}: use one of {', '.join(METRICS)}")
    modalities = [r.modality for r in records]
    if len(set(modalities)) != len(modalities):
        raise LandscapeInputError("rank one record per modality (the same exit for each)")
    if len(records) < 2:
        raise LandscapeInputError("ranking needs at least two modality networks")
    order = _order(records, metric)
    if order is None:
        raise LandscapeInputError(f"metric {metric!r} was not computed for every modality")
    by_name = {r.modality: r for r in records}
    field, error_field = METRICS[metric]
    warnings = []
    if error_field is not None:
        for flatter, sharper in zip(order, order[1:]):
            a, b = by_name[flatter], by_name[sharper]
            (va, ea), (vb, eb) = _interval(a, field, error_field), _interval(b, field, error_field)
            if va + z * ea >= vb - z * eb:
                warnings.append(
                    f"{metric} of {flatter} ({va:.4g} +- {z * ea:.2g}) and {sharper} ({vb:.4g} +- {z * eb:.2g}) "
                    "overlap: their order is not resolved"
                )
    for other in METRICS:
        other_order = _order(records, other) if other != metric else None
        if other_order is None:
            continue
        other_field = METRICS[other][0]
        reversed_pairs = [
            (a, b) for i, a in enumerate(order) for b in order[i + 1 :]
            if getattr(by_name[a], other_field) > getattr(by_name[b], other_field)
        ]  # fmt: skip
        if reversed_pairs:
            warnings.append(f"{other} orders them {' < '.join(other_order)}, unlike {metric} ({' < '.join(order)})")
    return Ranking(metric, tuple(order), {m: float(getattr(by_name[m], field)) for m in order}, tuple(warnings))


def _interval(record: FlatnessRecord, field: str, error_field: str) -> tuple[float, float]:
    error = float(getattr(record, error_field))
    return float(getattr(record, field)), error if math.isfinite(error) else math.inf


def _order(records: Sequence[FlatnessRecord], metric: str) -> list[str] | None:
    """Modalities by ascending ``metric`` (flattest first), or None if any value is missing."""
    field = METRICS[metric][0]
    values = [getattr(r, field) for r in records]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [r.modality for _, r in sorted(zip(values, records), key=lambda pair: pair[0])]
