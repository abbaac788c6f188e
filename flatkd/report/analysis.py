"""Where the ``analyses/`` notebooks read and write: the run directory and the figure folder.

``FLATKD_RUN`` names the run directory (default ``runs/demo``, what ``flatkd demo`` makes) and
``FLATKD_FIGURES`` the folder the publication figures go to (default ``figures``). Relative paths
are taken from the project root: the working directory, or its parent when the working directory is
``analyses/`` itself (where Jupyter starts a notebook's kernel). ``analyses/render.py`` passes
absolute paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flatkd.errors import MissingPrerequisiteError
from flatkd.runs.rundir import RunDir

RUN_VARIABLE = "FLATKD_RUN"
FIGURES_VARIABLE = "FLATKD_FIGURES"
DEFAULT_RUN = "runs/demo"
DEFAULT_FIGURES = "figures"
NOTEBOOK_FOLDER = "analyses"


def analysis_paths(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> tuple[RunDir, Path]:
    """``(run, figures)`` from ``environ`` (default ``os.environ``); the run must exist."""
    environ = os.environ if environ is None else environ
    root = Path.cwd() if cwd is None else cwd
    if root.name == NOTEBOOK_FOLDER:
        root = root.parent
    run = root / environ.get(RUN_VARIABLE, DEFAULT_RUN)
    figures = root / environ.get(FIGURES_VARIABLE, DEFAULT_FIGURES)
    if not RunDir(run).config_path.is_file():
        raise MissingPrerequisiteError(
            f"{run} is not a run directory: set {RUN_VARIABLE} to one, or make {DEFAULT_RUN} with `flatkd demo`"
        )
    return RunDir(run), figures
