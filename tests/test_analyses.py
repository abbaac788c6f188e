"""The ``analyses/`` notebooks: executed on a finished run they write every publication figure; the
figure functions and readers they call draw and read the run's own numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
from helpers.demo import DemoRun
from matplotlib.colors import LogNorm

from flatkd.distill.wise import WiseConfig
from flatkd.errors import MissingPrerequisiteError
from flatkd.plots.distill import METHOD_LABELS, exit_gain_figure, wise_tradeoff_panels
from flatkd.plots.landscape import plot_flatness_metrics, plot_loss_planes
from flatkd.report import (
    accuracy_by_method,
    analysis_paths,
    final_exit_records,
    flatness_curves,
    flatness_records,
    flatness_summary,
    wise_by_method,
    wise_tradeoff_data,
)
from flatkd.runs.methods import METHODS
from flatkd.runs.rundir import RunDir
from flatkd.runs.wise import variant_name

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
#: notebook -> the figures it writes (each as PDF and PNG)
FIGURES = {
    "flatness": ("flatness_density", "flatness_lines", "flatness_planes", "flatness_metrics"),
    "distillation": ("distillation_accuracy", "distillation_gain"),
    "wise": ("wise_tradeoff",),
}




@pytest.fixture
def run_dir(demo_run: DemoRun) -> Path:
    """The finished tiny demo run (shared: read it, never write into it)."""
    return demo_run.run



def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("analyses_render", ANALYSES / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_executes_every_notebook_and_writes_its_figures(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    done = subprocess.run(
        [sys.executable, str(ANALYSES / "render.py"), "--run", str(run_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {f"{stem}.{fmt}" for stems in FIGURES.values() for stem in stems for fmt in ("pdf", "png")}
    assert {p.name for p in out.iterdir()} == expected
    for path in out.iterdir():
        assert 0 < path.stat().st_size < 500_000, path
        assert f"wrote {path}" in done.stdout
    assert sorted(p.stem for p in ANALYSES.glob("*.ipynb")) == sorted(FIGURES)


def test_a_failing_notebook_fails_the_render(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('broken cell')")]), notebook)
    render = _render_module()
    assert render.main(["--run", str(run_dir), "--out", str(tmp_path / "out")], notebooks=[notebook]) == 1
    assert "broken.ipynb failed" in capsys.readouterr().err
    assert render.main(["--run", str(tmp_path / "nowhere")], notebooks=[]) == 2


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebooks_are_stored_without_outputs_and_paired_with_their_script(name: str) -> None:
    notebook = nbformat.read(ANALYSES / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in notebook.cells if cell.cell_type == "code")
    script = jupytext.read(ANALYSES / f"{name}.py")
    assert [(c.cell_type, c.source) for c in notebook.cells] == [(c.cell_type, c.source) for c in script.cells]
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(f"`{stem}`" in notebook.cells[0].source for stem in FIGURES[name])  # documented


def test_readers_return_the_runs_files(run_dir: Path) -> None:
    run = RunDir(run_dir)
    table = pd.read_csv(run_dir / "flatness.csv")
    records = flatness_records(run)
    assert [(r.modality, r.exit, r.trace, r.trace_stderr) for r in records] == list(
        table[["modality", "exit", "trace", "trace_stderr"]].itertuples(index=False, name=None)
    )
    finals = final_exit_records(records)
    assert list(dict.fromkeys(r.modality for r in finals)) == ["iframe", "mv", "residual"]
    curves = flatness_curves(run)
    for table in (curves.density, curves.lines, curves.planes):
        assert list(dict.fromkeys(table["modality"])) == ["iframe", "mv", "residual"]
    for record in (r for r in finals if r.subset == 0):  # the plane's centre: the loss at the trained weights
        plane = curves.planes[curves.planes["modality"] == record.modality]
        (centre,) = plane[(plane["alpha"] == 0) & (plane["beta"] == 0)]["loss"]
        assert centre == pytest.approx(record.loss, rel=1e-5)

    distill = pd.read_csv(run_dir / "distill.csv")
    accuracy = accuracy_by_method(run)
    for row in distill[distill["split"] == "test"].itertuples():
        assert accuracy[row.method][row.modality][row.exit] == pytest.approx(100 * row.accuracy)

    wise = json.loads((run_dir / "wise.json").read_text())
    grouped = [(method, label, result) for method, variants in wise_by_method(run).items() for label, result in variants.items()]
    assert len(grouped) == len(wise)
    for method, label, result in grouped:
        stored = wise[variant_name(METHODS[method], WiseConfig(scaling=result.scaling, lateral=result.lateral))]
        assert (result.order, result.at_tau.accuracy) == (tuple(stored["order"]), stored["at_tau"]["accuracy"])
        assert label == "WISE" if result.scaling and result.lateral else label.startswith("WISE (no ")


def test_analysis_paths_come_from_the_environment(run_dir: Path, tmp_path: Path) -> None:
    run, figures = analysis_paths({"FLATKD_RUN": str(run_dir), "FLATKD_FIGURES": "paper/figs"}, cwd=tmp_path / "analyses")
    assert (run.path, figures) == (run_dir, tmp_path / "paper" / "figs")  # relative to the project root
    with pytest.raises(MissingPrerequisiteError, match="flatkd demo"):
        analysis_paths({}, cwd=tmp_path)


def test_figure_functions_draw_the_numbers_they_get(run_dir: Path) -> None:
    run = RunDir(run_dir)
    summary = flatness_summary(run)
    fig = plot_flatness_metrics(summary)
    adaptive = summary[summary["metric"] == "adaptive_trace"]
    panel = fig.axes[0]
    assert [bar.get_height() for bar in panel.patches] == adaptive["mean"].tolist()
    (errors,) = [c for c in panel.collections if len(c.get_segments()) == len(adaptive)]
    ends = [(s[0, 1], s[1, 1]) for s in errors.get_segments()]
    np.testing.assert_allclose(ends, adaptive[["ci_low", "ci_high"]].to_numpy())
    assert fig.axes[0].get_title() == "adaptive trace tr(|θ|H|θ|)\n(95% over subsets)"

    planes = flatness_curves(run).planes
    fig = plot_loss_planes(planes)
    contours = [c for ax in fig.axes for c in ax.collections if hasattr(c, "levels") and c.filled]
    assert len(contours) == planes["modality"].nunique() and all(isinstance(c.norm, LogNorm) for c in contours)
    assert all(np.array_equal(c.levels, contours[0].levels) for c in contours)  # one scale for every panel
    assert contours[0].levels[0] == pytest.approx(np.nanmin(planes["loss"]))
    assert contours[0].levels[-1] == pytest.approx(np.nanmax(planes["loss"]))

    accuracy = accuracy_by_method(run)
    fig = exit_gain_figure(accuracy, baseline="ce")
    mv = next(ax for ax in fig.axes if ax.get_title() == "Motion vector")
    (pkd,) = [line for line in mv.get_lines() if line.get_label() == "pkd"]
    np.testing.assert_allclose(pkd.get_ydata(), np.subtract(accuracy["pkd"]["mv"], accuracy["ce"]["mv"]))

    variants = wise_by_method(run)
    fig = wise_tradeoff_panels(*wise_tradeoff_data(run))
    assert [ax.get_title() for ax in fig.axes] == [f"{METHOD_LABELS[m]} exits" for m in variants]
    for ax, results in zip(fig.axes, variants.values()):
        for label, result in results.items():
            (curve,) = [line for line in ax.get_lines() if line.get_label() == label]
            assert sorted(curve.get_ydata()) == sorted(100 * p.accuracy for p in result.curve)
        first = next(iter(results.values()))
        points = [c.get_offsets()[0].tolist() for c in ax.collections]
        assert points == [pytest.approx([m / 1e6, 100 * a]) for m, a in zip(first.exit_macs, first.exit_accuracy)]
    assert math.isclose(fig.axes[0].get_xlim()[0], fig.axes[-1].get_xlim()[0])  # shared axes
