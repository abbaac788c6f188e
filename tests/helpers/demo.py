"""The tiny ``flatkd demo`` that the demo, report and notebook tests share: its command line and
what the ``demo_run`` fixture of ``tests/conftest.py`` hands them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: `flatkd demo` at test size: 4 classes, 36 clips of 26 frames at 48 px (a third of the groups
#: for testing), 2 segments of 32 px, one backbone epoch, three IC epochs (PKD along a
#: three-network chain needs three) and one generative-KD epoch.
TINY_DEMO = [
    "--classes", "4", "--clips-per-class", "9", "--test-fraction", "0.3", "--val-fraction", "0.15",
    "--frames", "26", "--size", "48", "--input-size", "32", "--batch-size", "4", "--epochs", "1",
    "--ic-epochs", "3", "--genkd-epochs", "1",
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
