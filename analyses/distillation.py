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
# # Distillation: every method against CE, per exit
#
# Publication figures of the test accuracy of every exit of every modality network, for each
# distillation method present in one run (`flatkd train` gives the CE baseline, `flatkd distill`
# the others), each saved as PDF and PNG:
#
# - `distillation_accuracy`: accuracy of every exit, one bar per method, one panel per modality;
# - `distillation_gain`: each method's gain over CE at every exit, in points.
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
from flatkd.plots.distill import METHOD_LABELS, exit_accuracy_figure, exit_gain_figure
from flatkd.report import accuracy_by_method, analysis_paths
from flatkd.runs.tables import accuracy_markdown, accuracy_rows

FORMATS = ("pdf", "png")
run, figures = analysis_paths()
accuracy = {METHOD_LABELS.get(method, method): values for method, values in accuracy_by_method(run).items()}
Markdown(accuracy_markdown(accuracy_rows(run)))

# %% [markdown]
# ## Accuracy of every exit

# %%
written = save_figure(exit_accuracy_figure(accuracy), figures / "distillation_accuracy", FORMATS)
Image(filename=written[-1])

# %% [markdown]
# ## Gain over CE
# Zero is the CE-trained internal classifier; the final exit (the backbone's own head) is the same
# network in every method.

# %%
written = save_figure(exit_gain_figure(accuracy, baseline=METHOD_LABELS["ce"]), figures / "distillation_gain", FORMATS)
Image(filename=written[-1])
