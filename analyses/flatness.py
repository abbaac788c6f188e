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
# - `flatness_metrics`: Hessian trace with its 95% interval, top eigenvalue, surface metrics.
#
# Settings come from environment variables (relative paths are from the repository root):
#
# - `FLATKD_RUN`: the run directory (default `runs/demo`, made by `flatkd demo`);
# - `FLATKD_FIGURES`: the folder the figures go to (default `figures`).
#
# `python analyses/render.py --run RUN --out DIR` executes every notebook of this folder.

# %%
from IPython.display import Image, Markdown

from flatkd.landscape import flatness_table
from flatkd.plots import save_figure
from flatkd.plots.landscape import plot_density, plot_flatness_metrics, plot_loss_lines, plot_loss_planes
from flatkd.report import analysis_paths, final_exit_records, flatness_curves, flatness_records

FORMATS = ("pdf", "png")
run, figures = analysis_paths()
records = final_exit_records(flatness_records(run))
curves = flatness_curves(run)
Markdown(f"Run `{run.path}`, final exits of {', '.join(r.modality for r in records)}; figures go to `{figures}`.")

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
# The trace's error bars are 1.96 standard errors over the Hutchinson probes: the intervals the
# ranking compares before it trusts an order.

# %%
written = save_figure(plot_flatness_metrics(flatness_table(records)), figures / "flatness_metrics", FORMATS)
Image(filename=written[-1])
