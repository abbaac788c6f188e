"""Distillation figures: WISE's accuracy-vs-MACs trade-off (one method, or several side by side),
per-exit accuracy bars (PKD vs CE and the ablations) and each method's per-exit gain over CE."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flatkd.distill.wise import WiseResult, parse_exit
from flatkd.plots import MODALITY_COLORS, MODALITY_LABELS, paper_style

#: How figures name the distillation methods of :data:`flatkd.runs.methods.METHODS`.
METHOD_LABELS = {
    "ce": "CE",
    "kd": "KD",
    "pkd": "PKD",
    "pkd-reversed": "PKD (reversed chain)",
    "pkd-iframe": "PKD (I-frame teacher)",
    "genkd": "GenKD",
    "pkd+genkd": "PKD + GenKD",
}

_MAC_UNITS = ((1e9, "GMACs"), (1e6, "MMACs"), (1e3, "kMACs"), (1.0, "MACs"))
_METHOD_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
#: line styles of the WISE variants' curves (all black, so they never read as a modality colour)
_CURVE_STYLES = ("-", "--", ":", "-.")
#: markers that stay apart in grey: one per exit depth (WISE), one per method (gain over CE)
_MARKERS = ("v", "s", "D", "o", "^", "P")


def _mac_unit(largest: float) -> tuple[float, str]:
    return next((scale, name) for scale, name in _MAC_UNITS if largest >= scale or scale == 1.0)


def wise_variant_label(result: WiseResult) -> str:
    """``"WISE"``, or ``"WISE (no scaling, no lateral)"`` for the ablations."""
    ablations = [name for name, on in (("no scaling", result.scaling), ("no lateral", result.lateral)) if not on]
    return f"WISE ({', '.join(ablations)})" if ablations else "WISE"


def wise_tradeoff_figure(results: Mapping[str, WiseResult], title: str | None = None) -> Figure:
    """Accuracy (%) against mean MACs per clip: one tau-sweep curve per result (e.g. WISE and its
    ablations, keyed by legend label), each operating point (its ``tau``) circled, and every
    single exit of the first result as a point coloured by modality, shaped by exit depth."""
    scale, unit = _mac_unit(_largest_macs(results.values()))
    with paper_style():
        fig, ax = plt.subplots(figsize=(5.6, 3.4))
        curves, markers = _draw_tradeoff(ax, results, scale, _curve_styles(results))
        ax.set_xlabel(f"mean {unit} per clip")
        ax.set_ylabel("accuracy (%)")
        if title:
            ax.set_title(title)
        ax.legend(handles=curves + markers, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def wise_tradeoff_panels(methods: Mapping[str, Mapping[str, WiseResult]]) -> Figure:
    """:func:`wise_tradeoff_figure` for several distillation methods side by side, on shared
    axes: ``methods[panel title][legend label]``, each panel with the single exits of its first
    result."""
    if not methods:
        raise ValueError("no WISE results to plot")
    scale, unit = _mac_unit(_largest_macs([r for results in methods.values() for r in results.values()]))
    styles = _curve_styles([label for results in methods.values() for label in results])
    with paper_style():
        fig, axes = plt.subplots(
            1, len(methods), figsize=(3.2 * len(methods) + 1.6, 3.2), sharex=True, sharey=True, squeeze=False
        )
        curves: dict[str, Line2D] = {}
        markers: dict[str, Line2D] = {}
        for ax, (title, results) in zip(axes[0], methods.items()):
            drawn = _draw_tradeoff(ax, results, scale, styles)
            curves |= {h.get_label(): h for h in drawn[0]}
            markers |= {h.get_label(): h for h in drawn[1]}
            ax.set_title(title)
            ax.set_xlabel(f"mean {unit} per clip")
        axes[0][0].set_ylabel("accuracy (%)")
        fig.tight_layout()
        ordered = [curves[label] for label in styles] + list(markers.values())
        fig.legend(handles=ordered, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def _largest_macs(results: Iterable[WiseResult]) -> float:
    return max(max(r.step_macs[-1], *r.exit_macs, *(p.macs for p in r.curve)) for r in results)


def _curve_styles(labels: Iterable[str]) -> dict[str, str]:
    """One line style per distinct curve label, in order of first appearance."""
    return dict(zip(dict.fromkeys(labels), itertools.cycle(_CURVE_STYLES)))


def _draw_tradeoff(
    ax: Axes, results: Mapping[str, WiseResult], scale: float, styles: Mapping[str, str]
) -> tuple[list[Line2D], list[Line2D]]:
    """Draw the tau sweeps (black, line style ``styles[label]``, operating point circled) and the
    first result's single exits; returns the legend handles of the curves and of the markers."""
    curves = []
    for label, result in results.items():
        points = sorted(result.curve, key=lambda p: p.macs)
        (line,) = ax.plot(
            [p.macs / scale for p in points], [100 * p.accuracy for p in points],
            color="black", linestyle=styles[label], marker=".", label=label,
        )  # fmt: skip
        ax.plot(result.at_tau.macs / scale, 100 * result.at_tau.accuracy, "o", mfc="none", ms=9, color="black")
        curves.append(line)
    first = next(iter(results.values()))
    exits = [parse_exit(name) for name in first.order]
    for (modality, index), macs, accuracy in zip(exits, first.exit_macs, first.exit_accuracy):
        ax.scatter(
            macs / scale, 100 * accuracy, color=MODALITY_COLORS.get(modality, "grey"),
            marker=_MARKERS[index % len(_MARKERS)], s=22, edgecolors="black", linewidths=0.4, zorder=3,
        )  # fmt: skip
    markers = [Line2D([], [], color="black", marker="o", mfc="none", linestyle="none", label="at the reported τ")]
    for modality in dict.fromkeys(m for m, _ in exits):
        markers.append(_marker(MODALITY_COLORS.get(modality, "grey"), "s", f"{MODALITY_LABELS.get(modality, modality)} exits"))
    for index in sorted({i for _, i in exits}):
        markers.append(_marker("lightgrey", _MARKERS[index % len(_MARKERS)], f"exit {index}"))
    return curves, markers


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
