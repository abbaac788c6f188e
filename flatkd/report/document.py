"""The whole run report: ``flatkd report --run RUN`` writes ``RUN/report.md``.

Sections, each from what the run directory holds (a section whose input is missing names the
command that makes it): data; training settings and the accuracy/MACs of every exit; each
network's kept epochs, test clips, chance, per-class accuracy, confusion matrix and warnings
when it is degenerate; flatness per
modality and the chain; accuracy of every exit per distillation method and the gains over CE;
WISE; with other runs of the same recipe (``--seed-run``), every method comparison across them;
any figure of ``RUN/figures/`` no section showed. Figures are linked relative to the
report's folder, so the report stays readable where it is written. The report depends only on the
run's files (no dates), so the same run gives the same text. :func:`write_report` first draws the
confusion matrices into ``RUN/figures/`` (:mod:`flatkd.runs.diagnostics`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from flatkd import __version__
from flatkd.errors import MissingPrerequisiteError
from flatkd.fileio import write_text
from flatkd.report.diagnostics_section import diagnostics_section
from flatkd.report.distill_section import distillation_section, wise_section
from flatkd.report.flatness_section import flatness_section
from flatkd.report.markdown import FigureLinks
from flatkd.report.protocol_section import protocol_section
from flatkd.report.run_summary import data_section, has_trained_network, training_section
from flatkd.report.seeds_section import seeds_section
from flatkd.runs.diagnostics import diagnose_run, write_confusion_figures
from flatkd.runs.rundir import RunDir
from flatkd.runs.seeds import seed_comparisons
from flatkd.runs.tables import accuracy_rows


def build_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    seed_runs: Sequence[str | os.PathLike[str]] = (),
) -> str:
    """The markdown report of ``run_dir``, its figure links relative to ``out``'s folder (default
    ``RUN/report.md``); with ``seed_runs`` (other training seeds of the same recipe) a section of
    every method comparison across the runs. A run without any trained network raises
    :class:`MissingPrerequisiteError`."""
    run = RunDir(run_dir)
    if not has_trained_network(run):
        raise MissingPrerequisiteError(
            f"{run.path} holds no trained network yet: run `flatkd train --run {run.path} --data DIR --modality MODALITY`"
            " (or `flatkd demo`) first"
        )
    target = Path(out) if out is not None else run.report_path
    figures = FigureLinks(run.figures_dir, target.parent)
    accuracy = accuracy_rows(run)
    sections = [
        ("Data", data_section(run, accuracy)),
        ("Training", training_section(run, accuracy)),
        ("Networks by class", diagnostics_section(run, figures)),
        ("Test protocol", protocol_section(run)),
        ("Flatness", flatness_section(run, figures)),
        ("Distillation", distillation_section(run, accuracy, figures)),
        ("WISE", wise_section(run, figures)),
    ]
    if seed_runs:
        runs = [run, *(RunDir(other) for other in seed_runs)]
        sections.append(("Across training seeds", seeds_section(seed_comparisons(runs), [r.path.name for r in runs])))
    rest = "".join(figures.embed(stem, stem.replace("_", " ")) for stem in figures.remaining()).lstrip("\n")
    if rest:
        sections.append(("Other figures", rest))
    head = f"# Run report: {run.path.name}\n\nRun directory `{run.path}`; written by flatkd {__version__}.\n"
    return head + "".join(f"\n## {title}\n\n{body}" for title, body in sections)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    seed_runs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Draw each trained network's confusion matrix into ``RUN/figures/``, then write
    :func:`build_report` to ``out`` (default ``RUN/report.md``) atomically; returns the path."""
    run = RunDir(run_dir)
    target = Path(out) if out is not None else run.report_path
    write_confusion_figures(run, diagnose_run(run))
    write_text(target, build_report(run_dir, target, seed_runs))
    return target
