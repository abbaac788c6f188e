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
# # WISE: accuracy against cost
#
# Publication figure of the WISE early-exit cascades of one run (`flatkd wise`, `wise.json`),
# saved as PDF and PNG:
#
# - `wise_tradeoff`: test accuracy against mean MACs per clip while the confidence threshold tau
#   is swept (thresholds from the validation confidences, from every clip at the first exit to
#   none early), one panel per distillation method, one curve per variant (WISE and its
#   ablations), the reported tau circled, every single exit of the method as a point (colour:
#   modality, shape: exit depth), and the controls as white markers: late fusion of the final
#   heads (equal, CoViAR's 2:1:1, fitted on validation) and the uniform sum of all exits.
#
# The tables: WISE at its tau, and WISE against the best single exit and each control on the
# same test clips, with the paired bootstrap 95% interval of the difference and McNemar's p.
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
from flatkd.plots.distill import wise_tradeoff_panels
from flatkd.report import analysis_paths, wise_tradeoff_data
from flatkd.runs.tables import wise_markdown
from flatkd.runs.wise import read_wise_results

FORMATS = ("pdf", "png")
run, figures = analysis_paths()
Markdown(wise_markdown(read_wise_results(run)))

# %% [markdown]
# ## Accuracy against MACs

# %%
curves, exits, controls = wise_tradeoff_data(run)
written = save_figure(wise_tradeoff_panels(curves, exits, controls), figures / "wise_tradeoff", FORMATS)
Image(filename=written[-1])
