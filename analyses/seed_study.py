"""Seed study: the demo over several training seeds and data seeds, in one table.

Usage (from the repository root, with the project's virtualenv)::

    python analyses/seed_study.py --out runs/seed-study --readme README.md

runs ``flatkd demo`` for training seeds 0, 1, 2 on data seed 0 and for training seed 0 on data
seed 1 (``--seeds``, ``--data-seeds``; a finished run is kept, an unfinished one continues), then
writes into ``--out``:

- ``seed_study.md``: (1) the linear probe of each dataset and the final heads of every run
  (accuracy per modality, equal late fusion, top-class agreement of every pair) with the mean and
  the Student-t 95% interval over runs; (2) the flatness of each modality's final exit over the
  runs (raw and adaptive trace and top eigenvalue; ``flatkd.landscape.rank_modalities`` on the
  records of all runs, so the interval covers training and data seeds) and whether the order is
  resolved; (3) every method comparison of the runs (``flatkd.runs.seeds``): the IC methods
  against CE and own-head KD (condensed to the mean over the ICs per run), WISE against late
  fusion and the uniform sum, generative KD against its two controls;
- ``seed_study_runs.csv`` (every comparison in every run) and ``seed_study_summary.csv``;
- with ``--readme``: the block between ``<!-- seed-study:start -->`` and
  ``<!-- seed-study:end -->`` of that file replaced by the tables (the README's results section is
  regenerated from here, never written by hand).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from flatkd.data.cache import default_cache_dir
from flatkd.data.sanity import probe_dataset
from flatkd.fileio import write_text
from flatkd.landscape.ranking import rank_modalities, summary_table
from flatkd.modalities import MODALITIES
from flatkd.report.run_results import final_exit_records, flatness_records
from flatkd.runs.chain import read_chain
from flatkd.runs.heads import final_heads
from flatkd.runs.rundir import RunDir
from flatkd.runs.seeds import across_runs, run_comparisons
from flatkd.stats import seed_summary

START, END = "<!-- seed-study:start -->", "<!-- seed-study:end -->"
FLATNESS_METRICS = ("adaptive_trace", "trace", "adaptive_top_eigenvalue", "top_eigenvalue")


def plan(seeds: Sequence[int], data_seeds: Sequence[int]) -> list[tuple[int, int]]:
    """(data seed, training seed) pairs: every training seed on the first data seed, the first
    training seed on the others."""
    return [(data_seeds[0], s) for s in seeds] + [(d, seeds[0]) for d in data_seeds[1:]]


def run_demo(out: Path, data_seed: int, seed: int, extra: Sequence[str]) -> tuple[RunDir, float]:
    """``flatkd demo`` for one pair (continues an unfinished run); its run and the demo's total
    time (s) from ``demo_steps.csv`` of its first complete pass."""
    run = out / f"d{data_seed}-s{seed}"
    command = [sys.executable, "-m", "flatkd", "demo", "--run", str(run), "--data", str(out / f"data-d{data_seed}"),
               "--seed", str(seed), "--data-seed", str(data_seed), *extra]  # fmt: skip
    first = not (run / "demo_steps.csv").is_file()
    subprocess.run(command, check=True)
    steps = pd.read_csv(run / "demo_steps.csv")
    total = float(steps.loc[steps["step"] == "total", "seconds"].iloc[0])
    if first:
        write_text(run / "demo_steps_first.csv", steps.to_csv(index=False))
    elif (run / "demo_steps_first.csv").is_file():
        first_steps = pd.read_csv(run / "demo_steps_first.csv")
        total = float(first_steps.loc[first_steps["step"] == "total", "seconds"].iloc[0])
    return RunDir(run), total


def _interval(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean [low, high]`` over runs (one value: the value alone)."""
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    s = seed_summary(values)
    return f"{scale * s.mean:.{digits}f} [{scale * s.interval.low:.{digits}f}, {scale * s.interval.high:.{digits}f}]"


def heads_markdown(runs: Sequence[RunDir], probes: dict[int, dict[str, float]], pairs: Sequence[tuple[int, int]]) -> str:
    """Probe and final-head accuracies, fusion and agreement, per run and over runs."""
    heads = {run.path.name: final_heads(run) for run in runs}
    first = heads[runs[0].path.name]
    rows = {f"{name} accuracy": [h.accuracy[name].estimate for h in heads.values()] for name in first.accuracy}
    rows |= {f"{a}-{b} agreement": [h.agreement[a, b] for h in heads.values()] for a, b in first.agreement}
    lines = ["| | " + " | ".join(heads) + " | mean [95% CI over runs] |", "|---|" + "---:|" * (len(heads) + 1)]
    for label, values in rows.items():
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        lines.append(f"| {label} | {cells} | {_interval(values)} |")
    for data_seed, probe in probes.items():
        cells = ", ".join(f"{name} {100 * value:.1f}%" for name, value in probe.items())
        lines.append(f"\nLinear probe of data seed {data_seed} (`flatkd data synth --check`): {cells}.")
    return (
        f"Test clips per run: {first.clips}. Runs `dD-sS`: data seed D, training seed S"
        f" ({', '.join(f'd{d}-s{s}' for d, s in pairs)}). Accuracy (%) of each network's final head,"
        " their fusion (mean of the softmax scores), and the top-class agreement of every pair of final heads.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def flatness_markdown(runs: Sequence[RunDir]) -> str:
    """The final exits' flatness over all runs (interval over runs) and the ranking's verdict."""
    records = [
        dataclasses.replace(record, run=run.path.name)
        for run in runs
        for record in final_exit_records(flatness_records(run))
    ]
    ranking = rank_modalities(records)
    summary = summary_table(ranking)
    lines = ["| modality | " + " | ".join(FLATNESS_METRICS) + " |", "|---|" + "---:|" * len(FLATNESS_METRICS)]
    for modality in (m for m in MODALITIES if m in set(summary["modality"])):
        cells = []
        for metric in FLATNESS_METRICS:
            row = summary[(summary["modality"] == modality) & (summary["metric"] == metric)]
            if row.empty:
                cells.append("–")
                continue
            r = row.iloc[0]
            band = f" [{r.ci_low:.3g}, {r.ci_high:.3g}]" if not math.isnan(r.ci_low) else ""
            cells.append(f"{r['mean']:.3g}{band}")
        lines.append(f"| {modality} | " + " | ".join(cells) + " |")
    chains = ", ".join(f"{run.path.name}: {' → '.join(_chain(run))}" for run in runs)
    unresolved = ", ".join(f"{a}–{b}" for a, b in ranking.unresolved) or "none"
    verdict = (
        f"Order over all runs ({ranking.metric}, flattest first): {' < '.join(ranking.flattest_first)};"
        f" {'resolved' if ranking.resolved else 'not resolved'} (unresolved pairs: {unresolved})"
    )
    if ranking.unmeasurable:
        verdict += "; not at a minimum / near chance: " + "; ".join(
            f"{m}: {', '.join(reasons)}" for m, reasons in ranking.unmeasurable.items()
        )
    return (
        "Mean and 95% interval over runs (each run: the mean over its data subsets) of the final exit's"
        " curvature; adaptive = reparametrisation-invariant |θ|H|θ|.\n\n"
        + "\n".join(lines)
        + f"\n\n{verdict}. PKD's chain in each run: {chains}.\n"
    )


def _chain(run: RunDir) -> tuple[str, ...]:
    return read_chain(run).order


def comparisons_markdown(per_run: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Method comparisons over runs: the IC methods condensed to their mean over ICs per run,
    WISE and GenKD comparison by comparison; and the full summary table."""
    summary = across_runs(per_run)
    ics = per_run[per_run["family"] == "IC methods"]
    condensed = (
        ics.groupby(["a", "b", "run"], sort=False)["difference"].mean().reset_index().groupby(["a", "b"], sort=False)
    )
    lines = ["| comparison | runs | mean a − b (points) [95% CI over runs] | own paired CI above / below zero (runs, or IC results) |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for (a, b), group in condensed:
        own = ics[(ics["a"] == a) & (ics["b"] == b)]
        above, below = int((own["ci_low"] > 0).sum()), int((own["ci_high"] < 0).sum())
        lines.append(
            f"| {a} vs {b}, mean over the {own.groupby('run').size().iloc[0]} ICs | {group['run'].nunique()} |"
            f" {_interval(group['difference'].tolist(), scale=1.0)} | {above} / {below} of {len(own)} IC results |"
        )
    for r in summary[summary["family"] != "IC methods"].itertuples(index=False):
        where = "" if r.modality == "all" else f" ({r.modality})"
        values = per_run[(per_run["family"] == r.family) & (per_run["a"] == r.a) & (per_run["b"] == r.b)
                         & (per_run["modality"] == r.modality) & (per_run["exit"] == r.exit)]["difference"]  # fmt: skip
        lines.append(
            f"| {r.a} vs {r.b}{where} | {r.runs} | {_interval(values.tolist(), scale=1.0)} | {r.above} / {r.below} |"
        )
    return "\n".join(lines) + "\n", summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/seed-study"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--readme", type=Path, default=None, help="README whose seed-study block to regenerate.")
    parser.add_argument("demo_args", nargs="*", help="Options passed to every `flatkd demo` (after --).")
    args = parser.parse_args(argv)
    pairs = plan(args.seeds, args.data_seeds)
    runs, walls = [], []
    for data_seed, seed in pairs:
        run, wall = run_demo(args.out, data_seed, seed, args.demo_args)
        runs.append(run)
        walls.append(wall)
    probes = {
        d: probe_dataset(args.out / f"data-d{d}", default_cache_dir(args.out / f"data-d{d}")).accuracy()
        for d in args.data_seeds
    }
    per_run = pd.concat([run_comparisons(run) for run in runs], ignore_index=True)
    comparisons, summary = comparisons_markdown(per_run)
    text = (
        "### Final heads\n\n" + heads_markdown(runs, probes, pairs)
        + "\n### Flatness\n\n" + flatness_markdown(runs)
        + "\n### Method comparisons (paired, test clips)\n\n"
        + "Each run's difference comes with its own paired bootstrap 95% interval over test clips; across runs"
        " the mean difference gets a Student-t 95% interval. Full table: `seed_study_summary.csv`.\n\n"
        + comparisons
        + f"\nReproduce: `python analyses/seed_study.py --out {args.out}` ({len(runs)} demos; `flatkd demo` took"
        f" {min(walls) / 60:.1f}–{max(walls) / 60:.1f} min each here; a finished run is kept).\n"
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "seed_study.md", "# Seed study\n\n" + text)
    per_run.to_csv(args.out / "seed_study_runs.csv", index=False)
    summary.to_csv(args.out / "seed_study_summary.csv", index=False)
    if args.readme is not None:
        readme = args.readme.read_text(encoding="utf-8")
        if START not in readme or END not in readme:
            raise SystemExit(f"{args.readme}: no {START} ... {END} block to regenerate")
        head, rest = readme.split(START, 1)
        write_text(args.readme, head + START + "\n" + text + END + rest.split(END, 1)[1])
    print(text)


if __name__ == "__main__":
    main()
