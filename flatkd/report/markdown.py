"""Markdown building blocks of the run report: tables, numbers, notes, and figure links."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric_from: int = 1) -> str:
    """A GitHub-flavoured markdown table; columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; ``–`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def percent(fraction: float | None) -> str:
    """A fraction in [0, 1] as a percentage with one decimal; ``–`` when missing."""
    return "–" if fraction is None or not math.isfinite(fraction) else f"{100 * fraction:.1f}"


def with_error(value: float | None, error: float | None) -> str:
    """``value ± error`` (the error to 2 significant digits), or the value alone without one."""
    if error is None or not math.isfinite(error):
        return number(value)
    return f"{number(value)} ± {number(error, 2)}"


def todo(what: str, command: str) -> str:
    """A note for a section whose input is not there yet, naming the command that makes it."""
    return f"_{what}: run `{command}`._\n"


class FigureLinks:
    """The PNG figures of a run's ``figures/`` folder, embedded by relative links from the report's
    folder. Sections :meth:`embed` the figures they explain; :meth:`remaining` lists the rest, so
    every figure appears exactly once."""

    def __init__(self, figures_dir: Path, report_dir: Path):
        self._dir = figures_dir
        self._report_dir = report_dir
        self._used: set[str] = set()

    def available(self) -> list[str]:
        """Stems of the PNG files in the figures folder, sorted (hidden files, such as the temporary
        files of an atomic write in progress, are not figures)."""
        if not self._dir.is_dir():
            return []
        return sorted(p.stem for p in self._dir.glob("*.png") if not p.name.startswith("."))

    def embed(self, stem: str, caption: str) -> str:
        """``![caption](relative/path/stem.png)`` as a paragraph of its own if that figure exists
        (marking it used), else ``""``."""
        path = self._dir / f"{stem}.png"
        if not path.is_file():
            return ""
        self._used.add(stem)
        link = quote(Path(os.path.relpath(path, self._report_dir)).as_posix())
        return f"\n![{caption}]({link})\n"

    def remaining(self) -> list[str]:
        """Stems of the figures no section embedded yet."""
        return [stem for stem in self.available() if stem not in self._used]
