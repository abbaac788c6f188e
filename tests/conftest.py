"""Test-wide settings (one torch thread per xdist worker) and the tiny end-to-end run that the
demo, report and notebook tests share.

``demo_run`` is built by the real ``flatkd demo`` at a tiny size, once per test session: the
first xdist worker that needs it builds it under a file lock in the session's shared temporary
folder, the others wait and reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from filelock import FileLock

torch.set_num_threads(1)

#: `flatkd demo` at test size: 4 classes, 36 clips of 26 frames at 48 px, 2 segments of 32 px,
#: one backbone epoch and three IC epochs (PKD along a three-network chain needs three).
TINY_DEMO = [
    "--classes", "4", "--clips-per-class", "9", "--frames", "26", "--size", "48",
    "--input-size", "32", "--batch-size", "4", "--epochs", "1", "--ic-epochs", "3",
    "--set", "num_segments=2", "--set", "workers=0", "--jobs", "1",
]  # fmt: skip


def demo_args(run: Path, data: Path) -> list[str]:
    """The tiny demo's command line (after ``flatkd``)."""
    return ["demo", "--run", str(run), "--data", str(data), *TINY_DEMO]


@dataclass(frozen=True)
class DemoRun:
    """A finished tiny demo: its run and data directories and what the command printed."""

    run: Path
    data: Path
    output: str


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DemoRun:
    """A tiny, complete ``flatkd demo`` run (trained, ranked, CE + PKD distilled, WISE, report)."""
    from flatkd.cli import cli

    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "demo"
    output = root / "output.txt"
    with FileLock(f"{root}.lock"):
        if not output.is_file():
            result = CliRunner().invoke(cli, demo_args(root / "run", root / "data"))
            assert result.exit_code == 0, result.output
            output.write_text(result.output)
    return DemoRun(root / "run", root / "data", output.read_text())
