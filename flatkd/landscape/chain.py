"""The distillation chain that a flatness ranking produces: its schema and validation.

``flatkd rank-modalities`` ranks the modality networks by flatness (:mod:`.ranking`) and PKD visits
the teachers from the sharpest minimum to the flattest (the paper finds MV sharpest, then
residual, then I-frame: ``["mv", "residual", "iframe"]``). As JSON (``chain.json`` of a run)::

    {
      "chain": ["mv", "residual", "iframe"],      required: sharpest -> flattest, no repeats
      "metric": "trace",                          optional: the flatness metric that ordered it
      "scores": {"mv": 812.0, "residual": 455.1,  optional: that metric per modality (larger is
                 "iframe": 120.3},                          sharper); must cover the chain
      "warnings": ["..."],                        optional: how firmly the data supports the order
      "measured_chain": ["residual", "mv", ...],  optional: the ranking's own order, sharpest first
      "source": "paper",                          optional: "measured" (the ranking resolved every
                                                  pair), "paper" (it did not: :data:`PAPER_CHAIN`)
                                                  or "given" (written by hand; the default)
      "reason": "..."                             optional: why ``chain`` is what it is
    }

``chain`` is the teacher order PKD uses. Other keys are ignored. :meth:`Chain.to_json` and :func:`chain_from_json` are inverses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flatkd.modalities import MODALITIES

#: PKD's teacher order in the paper (MV sharpest, then residual, then I-frame / the own head)
PAPER_CHAIN = ("mv", "residual", "iframe")
SOURCES = ("measured", "paper", "given")


@dataclass(frozen=True)
class Chain:
    """PKD's teacher order (sharpest first), the metric and scores behind it, the ranking's
    warnings, the ranking's own ``measured`` order and where ``order`` came from and why."""

    order: tuple[str, ...]
    metric: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    measured: tuple[str, ...] = ()
    source: str = "given"
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.order:
            raise ValueError("'chain' is empty")
        unknown = [m for m in self.order if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modality {unknown[0]!r} in 'chain' (valid: {', '.join(MODALITIES)})")
        if len(set(self.order)) != len(self.order):
            raise ValueError("'chain' names a modality twice")
        missing = [m for m in self.order if self.scores and m not in self.scores]
        if missing:
            raise ValueError(f"'scores' lack {', '.join(missing)}")
        if self.source not in SOURCES:
            raise ValueError(f"'source' must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.measured and sorted(self.measured) != sorted(self.order):
            raise ValueError("'measured_chain' must name the same modalities as 'chain'")

    @property
    def flattest_first(self) -> tuple[str, ...]:
        return tuple(reversed(self.order))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the module docstring (``flattest_first`` added for readers)."""
        obj: dict[str, Any] = {"chain": list(self.order)}
        if self.metric is not None:
            obj["metric"] = self.metric
        if self.scores:
            obj["scores"] = dict(self.scores)
        obj["flattest_first"] = list(self.flattest_first)
        obj["warnings"] = list(self.warnings)
        if self.measured:
            obj["measured_chain"] = list(self.measured)
        obj["source"] = self.source
        if self.reason:
            obj["reason"] = self.reason
        return obj


def chain_from_json(obj: Any) -> Chain:
    """Validate a parsed chain object; raises ``ValueError`` saying what is wrong."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if not isinstance(obj.get("chain"), list):
        raise ValueError("'chain' must be a list of modality names, sharpest first")
    metric = obj.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise ValueError("'metric' must be a string")
    scores = obj.get("scores", {})
    if not isinstance(scores, Mapping) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()
    ):
        raise ValueError("'scores' must map modality names to numbers")
    warnings = obj.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ValueError("'warnings' must be a list of strings")
    measured = obj.get("measured_chain", [])
    if not isinstance(measured, list):
        raise ValueError("'measured_chain' must be a list of modality names, sharpest first")
    source, reason = obj.get("source", "given"), obj.get("reason", "")
    if not isinstance(source, str) or not isinstance(reason, str):
        raise ValueError("'source' and 'reason' must be strings")
    return Chain(
        tuple(obj["chain"]), metric, {str(k): float(v) for k, v in scores.items()}, tuple(warnings),
        measured=tuple(measured), source=source, reason=reason,
    )  # fmt: skip
