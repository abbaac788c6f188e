"""The run report and the readers behind the paper figures.

- :func:`write_report` / :func:`build_report`: ``RUN/report.md``, a self-contained markdown report
  of a run directory (:mod:`flatkd.report.document`); ``flatkd report`` on the command line.
- :mod:`flatkd.report.run_results`: a run's results as the data :mod:`flatkd.plots` draws
  (flatness records and curves, accuracy per method, WISE variants per method and their
  trade-off tables).
- :func:`analysis_paths`: the run and figure folders the ``analyses/`` notebooks use.
"""

from flatkd.report.analysis import analysis_paths
from flatkd.report.document import build_report, write_report
from flatkd.report.run_results import (
    FlatnessCurves,
    accuracy_by_method,
    final_exit_records,
    flatness_curves,
    flatness_records,
    flatness_summary,
    wise_by_method,
    wise_tradeoff_data,
)

__all__ = [
    "FlatnessCurves",
    "accuracy_by_method",
    "analysis_paths",
    "build_report",
    "final_exit_records",
    "flatness_curves",
    "flatness_records",
    "flatness_summary",
    "wise_by_method",
    "wise_tradeoff_data",
    "write_report",
]
