"""The report's flatness section: every measured network exit (``flatness.csv``), the chain PKD
follows (``chain.json``) with the ranking's warnings, and the flatness figures."""

from __future__ import annotations

from flatkd.errors import FlatkdError
from flatkd.report.markdown import FigureLinks, number, percent, table, todo, with_error
from flatkd.report.run_results import flatness_records
from flatkd.runs.chain import read_chain
from flatkd.runs.rundir import RunDir


def flatness_section(run: RunDir, figures: FigureLinks) -> str:
    """Flatness table, chain and warnings, or a note naming ``flatkd rank-modalities``."""
    command = f"flatkd rank-modalities --run {run.path}"
    if not run.flatness_path.is_file():
        return todo("Not ranked yet", command)
    try:
        records = flatness_records(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    settings = run.read_config().get("landscape", {})
    rho = settings.get("rho")
    text = (
        f"Measured in eval mode on a fixed subset of at most {settings.get('samples', '?')} training clips (seed"
        f" {settings.get('seed', '?')}), backend {settings.get('backend', '?')}: trace ± standard error over the"
        " probes, top eigenvalue ± the Lanczos error estimate, surface metrics in filter-normalised units.\n\n"
    )
    rows = [
        [
            r.modality, r.exit, f"{r.parameters:,}", number(r.loss), percent(r.accuracy),
            with_error(r.trace, r.trace_stderr), with_error(r.top_eigenvalue, r.top_eigenvalue_error),
            with_error(r.trace_per_parameter, r.trace_per_parameter_stderr), number(r.mean_loss_increase),
            number(r.epsilon_sharpness), r.hvps,
        ]
        for r in records
    ]  # fmt: skip
    headers = ["modality", "exit", "parameters", "subset loss", "subset accuracy (%)", "trace", "top eigenvalue",
               "trace / parameter", f"mean loss increase (ρ={rho})", "ε-sharpness", "HVPs"]  # fmt: skip
    text += table(headers, rows, numeric_from=1) + "\n" + _chain(run, command)
    for stem, caption in (
        ("eigen_density", "Hessian eigenvalue density per modality"),
        ("surfaces", "Loss along a random filter-normalised direction (top) and on a plane (bottom)"),
    ):
        text += figures.embed(stem, caption)
    return text


def _chain(run: RunDir, command: str) -> str:
    if not run.chain_path.is_file():
        return todo("No chain.json yet", command)
    try:
        chain = read_chain(run)
    except FlatkdError as exc:
        return f"_{exc}_\n"
    scores = ", ".join(f"{m} {number(chain.scores[m])}" for m in chain.order) if chain.scores else "–"
    text = (
        f"**Chain** (PKD's teachers, sharpest first): {' -> '.join(chain.order)}"
        f" (by {chain.metric or 'an unnamed metric'}: {scores}).\n"
    )
    if chain.warnings:
        text += "\nWarnings of the ranking:\n\n" + "".join(f"- {w}\n" for w in chain.warnings)
    return text
