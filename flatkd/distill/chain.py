"""The distillation chain: ``chain.json`` in a run directory, its schema and validation.

``flatkd rank-modalities`` measures each modality network's flatness and writes the order in which
PKD visits the teachers, from the sharpest minimum to the flattest (the paper finds MV sharpest,
then residual, then I-frame: ``["mv", "residual", "iframe"]``)::

    {
      "chain": ["mv", "residual", "iframe"],      required: sharpest -> flattest, no repeats
      "metric": "hessian_trace",                  optional: the flatness metric that ordered it
      "scores": {"mv": 812.0, "residual": 455.1,  optional: that metric per modality (larger is
                 "iframe": 120.3}                           sharper); must cover the chain
    }

Other keys are ignored (room for notes such as disagreement warnings). A missing or malformed file
is a user error whose message names the command that writes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flatkd.errors import InputFileError, MissingPrerequisiteError
from flatkd.fileio import read_json, write_json
from flatkd.modalities import MODALITIES
from flatkd.rundir import RunDir



@dataclass(frozen=True)
class Chain:
    """Teacher order from the sharpest network to the flattest."""

    order: tuple[str, ...]
    metric: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)

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


def _rank_command(run_dir: Path) -> str:
    return f"`flatkd rank-modalities --run {run_dir}`"


def chain_from_json(obj: Any) -> Chain:
    """Validate a parsed ``chain.json``; raises ``ValueError`` saying what is wrong."""
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
    return Chain(tuple(obj["chain"]), metric, {str(k): float(v) for k, v in scores.items()})


def read_chain(run_dir: str | os.PathLike[str]) -> Chain:
    """Read and validate ``<run_dir>/chain.json``.

    A missing file raises :class:`MissingPrerequisiteError`, a malformed one
    :class:`InputFileError`; both messages name ``flatkd rank-modalities``.
    """
    run = Path(run_dir)
    path = RunDir(run).chain_path
    if not path.is_file():
        raise MissingPrerequisiteError(f"{path}: no distillation chain; run {_rank_command(run)} first")
    try:
        obj = read_json(path)
    except InputFileError as exc:
        raise InputFileError(f"{exc}; re-run {_rank_command(run)}") from None
    try:
        return chain_from_json(obj)
    except ValueError as exc:
        raise InputFileError(f"{path}: malformed chain file ({exc}); re-run {_rank_command(run)}") from None


def write_chain(
    run_dir: str | os.PathLike[str],
    order: Sequence[str],
    metric: str | None = None,
    scores: Mapping[str, float] | None = None,
) -> Path:
    """Validate and write ``<run_dir>/chain.json`` atomically; returns its path."""
    chain = Chain(tuple(order), metric, dict(scores or {}))
    obj: dict[str, Any] = {"chain": list(chain.order)}
    if chain.metric is not None:
        obj["metric"] = chain.metric
    if chain.scores:
        obj["scores"] = dict(chain.scores)
    path = RunDir(run_dir).chain_path
    write_json(path, obj)
    return path
