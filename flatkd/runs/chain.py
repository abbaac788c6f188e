"""``chain.json`` of a run: the one reader and the one writer of the distillation chain.

The schema is :class:`flatkd.landscape.chain.Chain` (the ranking produces it); this module only
puts it into and takes it out of a run directory. ``flatkd rank-modalities`` writes the file,
``flatkd distill`` and the report read it.
"""

from __future__ import annotations

from pathlib import Path

from flatkd.errors import InputFileError, MissingPrerequisiteError
from flatkd.fileio import read_json, write_json
from flatkd.landscape.chain import Chain, chain_from_json
from flatkd.runs.rundir import RunDir


def read_chain(run: RunDir) -> Chain:
    """Read and validate ``chain.json`` of ``run``.

    A missing file raises :class:`MissingPrerequisiteError`, a malformed one
    :class:`InputFileError`; both messages name the ``flatkd rank-modalities`` call that writes it.
    """
    path = run.chain_path
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


def write_chain(run: RunDir, chain: Chain) -> Path:
    """Write ``chain`` as ``chain.json`` of ``run`` atomically; returns its path."""
    write_json(run.chain_path, chain.to_json())
    return run.chain_path


def _rank_command(run: RunDir) -> str:
    return f"`flatkd rank-modalities --run {run.path}`"
