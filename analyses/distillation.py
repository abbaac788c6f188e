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
# Every comparison is shown with its paired bootstrap 95% interval over the test clips and
# McNemar's p (PKD against CE and against own-head KD, IC by IC; GenKD against its two controls
# on the student final heads), beside the epoch and teacher each IC checkpoint was kept at.
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
from flatkd.runs.genkd_tables import genkd_markdown, genkd_paired_rows, gradient_ratio_rows
from flatkd.runs.ic_comparisons import comparisons_markdown, comparisons_table, selection_markdown
from flatkd.runs.tables import accuracy_markdown, accuracy_rows

FORMATS = ("pdf", "png")
run, figures = analysis_paths()
rows = accuracy_rows(run)
accuracy = {METHOD_LABELS.get(method, method): values for method, values in accuracy_by_method(run).items()}
Markdown(accuracy_markdown(rows))

# %% [markdown]
# ## Checkpoints kept and their teachers

# %%
Markdown(selection_markdown(rows))

# %% [markdown]
# ## Paired comparisons on the same test clips

# %%
Markdown(comparisons_markdown(comparisons_table(run, rows)) or "Only one method in this run.")

# %% [markdown]
# ## Generative KD beside its controls
# `genkd` against the CE fine-tune at the same budget (`genkd-ce`) and the attention + CVAE
# fine-tune without the teacher (`genkd-noteacher`); then how large the teacher's attention
# distillation gradient is next to the task gradient.

# %%
Markdown(genkd_markdown(genkd_paired_rows(run), gradient_ratio_rows(run)) or "Generative KD not run (`flatkd distill --method genkd` and its controls).")

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
