"""Execute every notebook of ``analyses/`` on a run directory, writing its publication figures.

Usage (from the repository root, with the project's virtualenv)::

    python analyses/render.py --run runs/demo --out figures

Each notebook runs top to bottom in a fresh ``python3`` kernel of this interpreter (nbclient),
with ``FLATKD_RUN`` and ``FLATKD_FIGURES`` set to the absolute ``--run`` and ``--out``, and the
repository root as its working directory. The notebooks themselves are not modified (they are
stored without outputs). A failing cell stops the script: the notebook, the cell's error, exit
status 1. Lists the figure files written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

HERE = Path(__file__).resolve().parent
NOTEBOOKS = tuple(sorted(HERE.glob("*.ipynb")))
KERNEL = "python3"


def render(notebook: Path, run: Path, out: Path, timeout: int) -> None:
    """Execute ``notebook`` in a fresh kernel on ``run``, its figures going to ``out``."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": str(HERE.parent)}},
        # CurveZMQ-encrypted kernel sockets where the kernel supports them (ipykernel >= 7 warns otherwise)
        config=Config({"KernelManager": {"transport_encryption": "auto"}}),
    )
    client.execute(env={**os.environ, "FLATKD_RUN": str(run), "FLATKD_FIGURES": str(out)})


def main(argv: Sequence[str] | None = None, notebooks: Sequence[Path] = NOTEBOOKS) -> int:
    """The command line (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="run directory [runs/demo]")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="figure folder [figures]")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell [600]")
    args = parser.parse_args(argv)
    run, out = args.run.resolve(), args.out.resolve()
    if not (run / "config.yaml").is_file():
        print(f"render: error: {run} is not a run directory (no config.yaml): run `flatkd demo` first", file=sys.stderr)
        return 2
    before = {p: p.stat().st_mtime_ns for p in out.glob("*")} if out.is_dir() else {}
    for notebook in notebooks:
        started = time.perf_counter()
        try:
            render(notebook, run, out, args.timeout)
        except CellExecutionError as exc:
            print(f"render: error: {notebook.name} failed:\n{exc}", file=sys.stderr)
            return 1
        print(f"{notebook.name}: {time.perf_counter() - started:.1f} s")
    written = sorted(p for p in out.glob("*") if before.get(p) != p.stat().st_mtime_ns)
    print("\n".join(f"wrote {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
