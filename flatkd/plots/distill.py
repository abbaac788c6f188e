"""Distillation figures: WISE's accuracy-vs-MACs trade-off and per-exit accuracy bars (PKD vs CE
and the ablations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from flatkd.distill.wise import WiseResult, parse_exit
from flatkd.plots import MODALITY_COLORS, MODALITY_LABELS, paper_style

_MAC_UNITS = ((1e9, "GMACs"), (1e6, "MMACs"), (1e3, "kMACs"), (1.0, "MACs"))
_METHOD_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")


def _mac_unit(largest: float) -> tuple[float, str]:
    return next((scale, name) for scale, name in _MAC_UNITS if largest >= scale or scale == 1.0)


def wise_tradeoff_figure(results: Mapping[str, WiseResult], title: str | None = None) -> Figure:
    """Accuracy (%) against mean MACs per clip: one tau-sweep curve per result (e.g. WISE and its
    ablations, keyed by legend label), each operating point (its ``tau``) circled, and every
    single exit of the first result as a point coloured by modality."""
    first = next(iter(results.values()))
    largest = max([first.step_macs[-1], *first.exit_macs, *(p.macs for r in results.values() for p in r.curve)])
    scale, unit = _mac_unit(largest)
    with paper_style():
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        for label, result in results.items():
            points = sorted(result.curve, key=lambda p: p.macs)
            (line,) = ax.plot(
                [p.macs / scale for p in points], [100 * p.accuracy for p in points], marker=".", label=label
            )
            ax.plot(
                result.at_tau.macs / scale,
                100 * result.at_tau.accuracy,
                "o",
                mfc="none",
                ms=9,
                color=line.get_color(),
            )
        for name, macs, accuracy in zip(first.order, first.exit_macs, first.exit_accuracy):
            modality, index = parse_exit(name)
            point = (macs / scale, 100 * accuracy)
            ax.scatter(*point, color=MODALITY_COLORS.get(modality, "grey"), marker="s", s=18, zorder=3)
            ax.annotate(str(index), point, fontsize=6, xytext=(3, 2), textcoords="offset points")
        for modality in dict.fromkeys(parse_exit(name)[0] for name in first.order):
            ax.scatter([], [], color=MODALITY_COLORS.get(modality, "grey"), marker="s", s=18,
                       label=f"{MODALITY_LABELS.get(modality, modality)} exits")
        ax.set_xlabel(f"mean {unit} per clip")
        ax.set_ylabel("accuracy (%)")
        if title:
            ax.set_title(title)
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig


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
