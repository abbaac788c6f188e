"""Claiming an output folder for a resumable job (a synthetic set, a cache) with its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flatkd.errors import ConfigError
from flatkd.fileio import read_json, write_json


def claim_directory(root: Path, record_name: str, wanted: dict[str, Any], what: str) -> None:
    """Write ``wanted`` to ``root/record_name`` in a new or empty ``root``, or check that the
    record already there says the same, so that a rerun resumes the same job and never mixes
    two. Raises :class:`ConfigError` naming the settings that differ, or when ``root`` holds
    something else; ``what`` names the job's output ("a cache")."""
    record = root / record_name
    if record.exists():
        found = read_json(record)
        changed = sorted(key for key in wanted if found.get(key) != wanted[key])
        if changed or found.keys() != wanted.keys():
            raise ConfigError(
                f"{root} holds {what} made with other settings ({', '.join(changed) or 'format'}): "
                "choose another --out or delete it"
            )
    elif root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not {what}: choose an empty or new --out")
    else:
        write_json(record, wanted)
