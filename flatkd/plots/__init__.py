"""Figure functions shared by the CLI and the ``analyses/`` notebooks.

One module per figure family (``flow``: compressed-domain previews, ``landscape``: eigen-density
and loss surfaces, ``distill``: PKD/CE and WISE trade-offs). Every function takes data, returns a
``matplotlib.figure.Figure`` and never shows it; :func:`save_figure` writes PNG and/or PDF
atomically. All figures use :func:`paper_style`, so a paper's figures look alike. The functions
take plain data (arrays, data frames, mappings of numbers) and import no method package; nothing
here selects a matplotlib backend (the CLI chooses Agg, a notebook keeps its own).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from flatkd.fileio import atomic_path

#: Colours per modality, used by every figure that compares modalities.
MODALITY_COLORS = {"iframe": "#1b6ca8", "mv": "#d1495b", "residual": "#edae49", "fused": "#3a3a3a"}
MODALITY_LABELS = {"iframe": "I-frame", "mv": "Motion vector", "residual": "Residual", "fused": "Fused"}

_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType fonts in PDFs: editable, and accepted where Type 3 is not
    "ps.fonttype": 42,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.5,
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Context in which figures get flatkd's one consistent style."""
    with plt.rc_context(_STYLE):
        yield


def save_figure(fig: Figure, path: str | os.PathLike[str], formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (atomically) and close it.

    Saving happens in :func:`paper_style` (tight bounding box, 150 dpi PNGs, TrueType fonts in
    PDFs), and PDFs carry no creation date, so the same figure gives the same bytes."""
    stem = Path(path).with_suffix("")
    written = []
    with paper_style():
        for fmt in formats:
            target = stem.with_suffix(f".{fmt}")
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, metadata=metadata)
            written.append(target)
    plt.close(fig)
    return written
