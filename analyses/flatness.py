# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Flatness per modality
#
# Publication figures of the flatness of each modality network of one run, as measured by
# `flatkd rank-modalities` (`flatness.csv`, `flatness/`), each saved as PDF and PNG:
#
# - `flatness_density`: Hessian eigenvalue density (stochastic Lanczos quadrature), log scale;
# - `flatness_lines`: loss (and accuracy) along a random filter-normalised direction;
# - `flatness_planes`: loss on a filter-normalised random plane, one panel per modality;
# - `flatness_metrics`: adaptive (reparametrisation-invariant) and raw trace, top eigenvalue and
#   sharpness per modality with their 95% intervals over data subsets (or training runs), from
#   `flatness_summary.csv`, and the teacher order PKD uses with the reason (`chain.json`).
#
# Settings come from environment variables (relative paths are from the repository root):
#
# - `FLATKD_RUN`: the run directory (default `runs/demo`, made by `flatkd demo`);
# - `FLATKD_FIGURES`: the folder the figures go to (default `figures`).
#
# `python analyses/render.py --run RUN --out DIR` executes every notebook of this folder.

# %%
from IPython.display import Image, Markdown

from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_flatness_metrics, plot_loss_lines, plot_loss_planes
from flatkd.report import analysis_paths, final_exit_records, flatness_curves, flatness_records, flatness_summary
from flatkd.report.markdown import number, table
from flatkd.runs.chain import read_chain

FORMATS = ("pdf", "png")
run, figures = analysis_paths()
records = final_exit_records(flatness_records(run))
curves = flatness_curves(run)
summary = flatness_summary(run)
modalities = ", ".join(dict.fromkeys(r.modality for r in records))
Markdown(f"Run `{run.path}`, final exits of {modalities}; figures go to `{figures}`.")

# %% [markdown]
# ## Eigenvalue density
# One curve per modality, a band of one standard error over the SLQ runs.

# %%
written = save_figure(plot_density(curves.density, floor=curves.density_floor), figures / "flatness_density", FORMATS)
Image(filename=written[-1])

# %% [markdown]
# ## 1-D loss lines

# %%
written = save_figure(plot_loss_lines(curves.lines), figures / "flatness_lines", FORMATS)
Image(filename=written[-1])

# %% [markdown]
# ## 2-D loss planes
# The trained weights sit at the origin (star); axes are in filter-normalised units.

# %%
written = save_figure(plot_loss_planes(curves.planes), figures / "flatness_planes", FORMATS)
Image(filename=written[-1])

# %% [markdown]
# ## Flatness metrics
# Bars: the mean over the disjoint data subsets (and over training runs, with `--seed-run`); error
# bars: the 95% Student-t interval over runs when there are several, else over subsets (each
# subset with its own Hutchinson probes). A pair of modalities counts as ordered only when the
# intervals of the primary metric are disjoint.

# %%
written = save_figure(plot_flatness_metrics(summary), figures / "flatness_metrics", FORMATS)
Image(filename=written[-1])

# %%
chain = read_chain(run)
shown = summary[summary["metric"].isin(["adaptive_trace", "trace", "adaptive_top_eigenvalue", "top_eigenvalue"])]
columns = ["modality", "metric", "mean", "ci_low", "ci_high", "spread_over", "subset_sd", "run_sd"]
rows = [[number(v) if isinstance(v, float) else v for v in row] for row in shown[columns].itertuples(index=False)]
Markdown(
    table(columns, rows, numeric_from=2)
    + f"\n**PKD's teachers** ({chain.source}): {' -> '.join(chain.order)}. {chain.reason}"
)
