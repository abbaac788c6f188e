"""Distillation figures: WISE's accuracy-vs-MACs trade-off (one method, or several side by side),
per-exit accuracy bars (PKD vs CE and the ablations) and each method's per-exit gain over CE.

The functions take plain data: the trade-off figures long-form :class:`pandas.DataFrame` s (the
run layer makes them from WISE results: :func:`flatkd.runs.figure_data.wise_frames`), the bar
figures nested mappings of accuracies."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flatkd.plots import MODALITY_COLORS, MODALITY_LABELS, paper_style

#: How figures name the distillation methods of :data:`flatkd.runs.methods.METHODS`.
METHOD_LABELS = {
    "ce": "CE",
    "kd": "KD",
    "pkd": "PKD",
    "pkd-paper": "PKD (paper order)",
    "pkd-reversed": "PKD (reversed chain)",
    "pkd-iframe": "PKD (I-frame teacher)",
    "genkd": "GenKD",
    "genkd-ce": "GenKD control: CE fine-tune",
    "genkd-noteacher": "GenKD control: no teacher",
    "pkd+genkd": "PKD + GenKD",
}

_MAC_UNITS = ((1e9, "GMACs"), (1e6, "MMACs"), (1e3, "kMACs"), (1.0, "MACs"))
_METHOD_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
#: line styles of the WISE variants' curves (all black, so they never read as a modality colour)
_CURVE_STYLES = ("-", "--", ":", "-.")
#: markers that stay apart in grey: one per exit depth (WISE), one per method (gain over CE)
_MARKERS = ("v", "s", "D", "o", "^", "P")
#: markers of WISE's controls (fixed ensembles), drawn white with a black edge
_CONTROL_MARKERS = ("*", "X", "h", "p", "d", "<")


def _mac_unit(largest: float) -> tuple[float, str]:
    return next((scale, name) for scale, name in _MAC_UNITS if largest >= scale or scale == 1.0)


def wise_tradeoff_figure(
    curves: pd.DataFrame, exits: pd.DataFrame, title: str | None = None, controls: pd.DataFrame | None = None
) -> Figure:
    """Accuracy (%) against mean MACs per clip: one tau-sweep curve per ``label`` (e.g. WISE and
    its ablations), each operating point circled, every single exit as a point coloured by
    modality, shaped by exit depth, and every control (e.g. late fusion) as a white marker.

    ``curves``: columns ``label``, ``macs``, ``accuracy`` (a fraction) and ``operating`` (True:
    the point at the reported tau, circled; False: a point of the sweep). ``exits``: columns
    ``modality``, ``exit``, ``macs``, ``accuracy``. ``controls``: columns ``label``, ``macs``,
    ``accuracy``."""
    if curves.empty:
        raise ValueError("no WISE results to plot")
    controls = _no_controls() if controls is None else controls
    scale, unit = _mac_unit(_largest_macs(curves, exits, controls))
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.6, 3.4))
        styles = _TradeoffStyles(_curve_styles(curves["label"]), _control_markers(controls["label"]))
        handles, markers = _draw_tradeoff(ax, curves, exits, controls, scale, styles)
        ax.set_xlabel(f"mean {unit} per clip")
        ax.set_ylabel("accuracy (%)")
        if title:
            ax.set_title(title)
        ax.legend(handles=handles + markers, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def wise_tradeoff_panels(curves: pd.DataFrame, exits: pd.DataFrame, controls: pd.DataFrame | None = None) -> Figure:
    """:func:`wise_tradeoff_figure` for several distillation methods side by side, on shared
    axes: every table carries a ``panel`` column (the panel's title, in order of appearance)."""
    if curves.empty:
        raise ValueError("no WISE results to plot")
    controls = _no_controls() if controls is None else controls
    panels = list(dict.fromkeys(curves["panel"]))
    scale, unit = _mac_unit(_largest_macs(curves, exits, controls))
    styles = _TradeoffStyles(_curve_styles(curves["label"]), _control_markers(controls["label"]))
    with paper_style():
        fig, axes = plt.subplots(
            1, len(panels), figsize=(3.2 * len(panels) + 1.6, 3.2), sharex=True, sharey=True, squeeze=False
        )
        handles: dict[str, Line2D] = {}
        markers: dict[str, Line2D] = {}
        for ax, panel in zip(axes[0], panels):
            drawn = _draw_tradeoff(
                ax, curves[curves["panel"] == panel], exits[exits["panel"] == panel],
                controls[controls["panel"] == panel], scale, styles,
            )  # fmt: skip
            handles |= {h.get_label(): h for h in drawn[0]}
            markers |= {h.get_label(): h for h in drawn[1]}
            ax.set_title(panel)
            ax.set_xlabel(f"mean {unit} per clip")
        axes[0][0].set_ylabel("accuracy (%)")
        fig.tight_layout()
        ordered = [handles[label] for label in styles.curves] + list(markers.values())
        fig.legend(handles=ordered, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def _no_controls() -> pd.DataFrame:
    return pd.DataFrame(columns=["panel", "label", "macs", "accuracy"])


def _largest_macs(*tables: pd.DataFrame) -> float:
    return float(max(t["macs"].max() for t in tables if not t.empty))


def _curve_styles(labels: Iterable[str]) -> dict[str, str]:
    """One line style per distinct curve label, in order of first appearance."""
    return dict(zip(dict.fromkeys(labels), itertools.cycle(_CURVE_STYLES)))


def _control_markers(labels: Iterable[str]) -> dict[str, str]:
    """One marker per distinct control label, in order of first appearance."""
    return dict(zip(dict.fromkeys(labels), itertools.cycle(_CONTROL_MARKERS)))


@dataclass(frozen=True)
class _TradeoffStyles:
    """Line style per curve label, marker per control label (shared by every panel)."""

    curves: Mapping[str, str]
    controls: Mapping[str, str]


def _draw_tradeoff(
    ax: Axes, curves: pd.DataFrame, exits: pd.DataFrame, controls: pd.DataFrame, scale: float, styles: _TradeoffStyles
) -> tuple[list[Line2D], list[Line2D]]:
    """Draw the tau sweeps (black, line style ``styles.curves[label]``, operating point circled),
    the single exits and the controls (Line2D markers, so the exits stay the axes' only
    collections); returns the legend handles of the curves and of the markers."""
    handles = []
    for label, rows in curves.groupby("label", sort=False):
        sweep = rows[~rows["operating"].astype(bool)].sort_values("macs", kind="stable")
        (line,) = ax.plot(
            sweep["macs"] / scale, 100 * sweep["accuracy"],
            color="black", linestyle=styles.curves[str(label)], marker=".", label=str(label),
        )  # fmt: skip
        chosen = rows[rows["operating"].astype(bool)]
        ax.plot(chosen["macs"] / scale, 100 * chosen["accuracy"], "o", mfc="none", ms=9, color="black")
        handles.append(line)
    for modality, index, macs, accuracy in exits[["modality", "exit", "macs", "accuracy"]].itertuples(index=False):
        ax.scatter(
            macs / scale, 100 * accuracy, color=MODALITY_COLORS.get(modality, "grey"),
            marker=_MARKERS[index % len(_MARKERS)], s=22, edgecolors="black", linewidths=0.4, zorder=3,
        )  # fmt: skip
    markers = [Line2D([], [], color="black", marker="o", mfc="none", linestyle="none", label="at the reported τ")]
    for modality in dict.fromkeys(exits["modality"]):
        markers.append(_marker(MODALITY_COLORS.get(modality, "grey"), "s", f"{MODALITY_LABELS.get(modality, modality)} exits"))
    for index in sorted(set(exits["exit"])):
        markers.append(_marker("lightgrey", _MARKERS[index % len(_MARKERS)], f"exit {index}"))
    for label, macs, accuracy in controls[["label", "macs", "accuracy"]].itertuples(index=False):
        marker = styles.controls[str(label)]
        ax.plot(
            [macs / scale], [100 * accuracy],
            marker=marker, linestyle="none", color="black", mfc="white", ms=8, mew=0.8, zorder=4,
        )  # fmt: skip
        markers.append(_marker("white", marker, str(label)))
    return handles, markers


def _marker(color: str, marker: str, label: str) -> Line2D:
    return Line2D([], [], color=color, marker=marker, markeredgecolor="black", markeredgewidth=0.4, linestyle="none", label=label)


def exit_accuracy_figure(
    accuracy: Mapping[str, Mapping[str, Sequence[float]]],
    spread: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    title: str | None = None,
) -> Figure:
    """Per-exit accuracy bars, one panel per modality, one bar per method (e.g. CE, PKD,
    ablations): ``accuracy[method][modality][exit]`` in %, ``spread`` the same shape (error bars,
    e.g. the standard deviation over seeds)."""
    methods = list(accuracy)
    modalities = list(dict.fromkeys(m for per_method in accuracy.values() for m in per_method))
    width = 0.8 / len(methods)
    with paper_style():
        fig, axes = plt.subplots(1, len(modalities), figsize=(2.6 * len(modalities), 2.8), sharey=True, squeeze=False)
        for ax, modality in zip(axes[0], modalities):
            for i, method in enumerate(methods):
                values = np.asarray(accuracy[method].get(modality, ()), dtype=float)
                errors = None if spread is None else np.asarray(spread[method][modality], dtype=float)
                ax.bar(
                    np.arange(len(values)) + (i - (len(methods) - 1) / 2) * width,
                    values,
                    width,
                    yerr=errors,
                    color=MODALITY_COLORS.get(modality, "grey"),
                    alpha=1.0 - 0.55 * i / max(len(methods) - 1, 1),
                    hatch=_METHOD_HATCHES[i % len(_METHOD_HATCHES)],
                    edgecolor="black",
                    linewidth=0.4,
                    capsize=2,
                    label=method,
                )
            exits = max(len(accuracy[m].get(modality, ())) for m in methods)
            ax.set_xticks(range(exits), [f"exit {j}" for j in range(exits)])
            ax.set_title(MODALITY_LABELS.get(modality, modality))
        axes[0][0].set_ylabel("accuracy (%)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(methods), 4), frameon=False)
        if title:
            fig.suptitle(title)
        rows_of_legend = -(-len(methods) // 4)
        fig.tight_layout(rect=(0, 0.07 * rows_of_legend, 1, 1))
    return fig


def exit_gain_figure(accuracy: Mapping[str, Mapping[str, Sequence[float]]], baseline: str) -> Figure:
    """Accuracy gain over ``baseline`` (percentage points) of every exit, one panel per modality,
    one line per other method: ``accuracy[method][modality][exit]`` in %, as for
    :func:`exit_accuracy_figure`. Exits a method lacks are left out."""
    others = [m for m in accuracy if m != baseline]
    if baseline not in accuracy or not others:
        raise ValueError(f"need the baseline {baseline!r} and at least one other method")
    modalities = list(accuracy[baseline])
    with paper_style():
        fig, axes = plt.subplots(1, len(modalities), figsize=(2.6 * len(modalities), 2.6), sharey=True, squeeze=False)
        for ax, modality in zip(axes[0], modalities):
            reference = np.asarray(accuracy[baseline][modality], dtype=float)
            for i, method in enumerate(others):
                values = np.asarray(accuracy[method].get(modality, ()), dtype=float)
                if values.size:
                    ax.plot(
                        np.arange(values.size), values - reference[: values.size],
                        color=MODALITY_COLORS.get(modality, "grey"), linestyle=_CURVE_STYLES[i % len(_CURVE_STYLES)],
                        marker=_MARKERS[i % len(_MARKERS)], markeredgecolor="black", markeredgewidth=0.4,
                        label=method,
                    )  # fmt: skip
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xticks(range(reference.size), [f"exit {j}" for j in range(reference.size)])
            ax.set_title(MODALITY_LABELS.get(modality, modality))
        axes[0][0].set_ylabel(f"gain over {baseline} (points)")
        handles = [
            Line2D([], [], color="dimgrey", linestyle=_CURVE_STYLES[i % len(_CURVE_STYLES)],
                   marker=_MARKERS[i % len(_MARKERS)], markeredgecolor="black", label=method)
            for i, method in enumerate(others)
        ]  # fmt: skip
        fig.legend(handles=handles, loc="lower center", ncol=min(len(others), 4), frameon=False)
        fig.tight_layout(rect=(0, 0.08 * -(-len(others) // 4), 1, 1))
    return fig
