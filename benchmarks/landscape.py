"""flatkd.landscape vs PyHessian and loss-landscapes at equal accuracy, in interleaved rounds.

Two model shapes, each trained briefly on a seeded synthetic 10-class task (noisy class templates,
2 epochs of SGD with momentum) and then measured on one fixed batch, on one thread:

* **cnn**: a plain CNN (three conv + BatchNorm + ReLU stages, global pooling, a linear head;
  29,274 parameters), batch 128 x 3 x 16 x 16, trained 4 epochs on 2048 images;
* **mv exit 0**: the ``cpu-tiny`` MV network of :mod:`flatkd.models` (a multi-exit ResNet),
  measured at its first internal classifier through :class:`flatkd.landscape.SelectExit` (the
  backbone's first stage and that head), batch 32 clips x 3 segments x 2 x 56 x 56, trained on the
  sum of all exits' losses (so that no BatchNorm bias stays zero: loss-landscapes' filter
  normalisation divides by it).

Accuracy targets are fixed first (calibration, untimed), the same for both tools:

* **top eigenvalue to 1e-4**: the reference is float64 Lanczos run to an error estimate of 1e-12.
  Each tool starts at ``tol=1e-4`` (flatkd's Lanczos: on its error estimate; PyHessian's power
  iteration, 1000 iterations at most: on the relative change) and tightens it tenfold until its
  value is within 1e-4 of the reference; a tool that cannot is reported.
* **trace at equal standard error**: PyHessian's Hutchinson gets its default 100 probes, forced
  (``tol=-inf``); flatkd's Hutch++ gets the smallest budget on a ladder whose standard error is
  no larger. (The other way round, PyHessian would need ``(sd / s.e._flatkd)^2`` probes, tens of
  thousands on the CNN.)
* **bundle**: flatkd's :meth:`~flatkd.landscape.Hessian.spectrum` (eigenvalue to 1e-4, trace,
  density of 3 SLQ runs x 16 steps from shared products) with the fewest extra trace probes on a
  ladder that bring its trace s.e. to PyHessian's, vs PyHessian's three calls above plus its
  density (1 run x 100 steps); PyHessian's bundle time is the sum of its three calls in the round.
* **21x21 filter-normalised plane**, radius 1: :meth:`flatkd.landscape.Surface.plane` vs
  ``loss_landscapes.random_plane``; flatkd is also run with its evaluator in the default
  (contiguous) memory layout, to check the layout the library picks (channels-last for
  convolutional models) is the faster one on both shapes, and that both give the same numbers.

Then ``rounds`` rounds (5 for the CNN, 3 for the MV network): in each, every contender runs once,
from scratch on the shared model and batch (a fresh :class:`~flatkd.landscape.Hessian` or
PyHessian instance, a fresh :class:`~flatkd.landscape.Surface`), the order rotating by one each
round. Each ratio is flatkd's time over the reference's in the *same* round; printed are the
median of those paired ratios, their min-max, and PASS/MISS against the targets (issue 18):
eigenvalue <= 0.8x, trace <= 0.2x, bundle <= 0.5x, plane <= 1.05x. Every method is seeded, so
results repeat exactly across rounds; only the times vary (the machine is shared). Also printed
per shape, before the rounds: the cost of one HVP through flatkd's cached graph and rebuilding it,
in units of one forward + backward (FB), best of one batch of 10.

With ``--phases``, last, where ``flatkd rank-modalities`` spends its time: :func:`measure_network`
on a ``cpu-tiny`` MV network (random weights; the cost does not depend on them) at the demo's
input, 32 clips of 3 segments at 112 px, with the default and the ``--quick`` settings. Each phase
is timed through the progress factory and also given in units of one forward pass over that subset
(F, measured in the same run), which vary less than seconds with the machine's load.

Run: ``.venv/bin/python benchmarks/landscape.py [--phases]`` (about 6 minutes on 2 cores, 2 more
with ``--phases``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from flatkd.landscape import (
    EigenEstimate,
    FlatnessSettings,
    Hessian,
    LossSurface,
    Objective,
    SelectExit,
    Surface,
    TraceEstimate,
    measure_network,
)
from flatkd.landscape.reference import PyHessianBackend
from flatkd.models import build_model

SEED = 0
CLASSES = 10
ACCURACY = 1e-4
TOLERANCES = (1e-4, 1e-5, 1e-6, 1e-7)
PYHESSIAN_MAX_ITER = 1000
PYHESSIAN_PROBES = 100
PYHESSIAN_DENSITY = (1, 100)  # runs, steps
HUTCHPP_BUDGETS = (9, 15, 21, 30, 45, 66, 99, 150, 225, 300)
SPECTRUM_PROBES = (5, 10, 20, 40, 80, 160)
PLANE_STEPS = 21
TARGETS = {"eigen": 0.8, "trace": 0.2, "bundle": 0.5, "plane": 1.05}


@dataclass(frozen=True)
class Shape:
    """A trained model to measure, its fixed batch and how many timing rounds it gets."""

    name: str
    model: nn.Module
    inputs: torch.Tensor
    labels: torch.Tensor
    rounds: int

    @property
    def data(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.inputs, self.labels)]

    def describe(self, objective: Objective) -> str:
        batch = "x".join(map(str, self.inputs.shape))
        return f"{self.name}: {objective.dim:,} parameters measured, batch {batch}, {self.rounds} rounds"


def make_cnn() -> nn.Module:
    """Three conv + BatchNorm + ReLU stages, global pooling, a linear head (29,274 parameters)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 80, 3, padding=1), nn.BatchNorm2d(80), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(80, CLASSES),
    )  # fmt: skip


def trained(
    make: Callable[[], nn.Module], sample: tuple[int, ...], samples: int, epochs: int, batch: int
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Build ``make()`` under the seed and train it (eval mode on return) by SGD on ``samples`` noisy class templates of shape
    ``sample``, summing the loss over the exits of a multi-exit model; return it and the first
    ``batch`` samples."""
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    templates = torch.randn(CLASSES, *sample, generator=generator)
    labels = torch.randint(0, CLASSES, (samples,), generator=generator)
    inputs = templates[labels] + 1.5 * torch.randn(samples, *sample, generator=generator)
    model = make()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(samples, generator=generator)
        for start in range(0, samples, 64):
            idx = order[start : start + 64]
            outputs = model(inputs[idx])
            exits = outputs if isinstance(outputs, list | tuple) else [outputs]
            loss = sum(nn.functional.cross_entropy(out, labels[idx]) for out in exits)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval(), inputs[:batch], labels[:batch]


def shapes() -> list[Shape]:
    """The two model shapes of the module docstring."""
    cnn, x, y = trained(make_cnn, (3, 16, 16), samples=2048, epochs=4, batch=128)
    mv, clips, clip_labels = trained(
        lambda: build_model("cpu-tiny", "mv", num_classes=CLASSES), (3, 2, 56, 56), samples=512, epochs=2, batch=32
    )
    return [Shape("cnn", cnn, x, y, rounds=5), Shape("mv exit 0", SelectExit(mv, 0), clips, clip_labels, rounds=3)]


def relative_error(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def first_accurate(
    name: str, run: Callable[[float], EigenEstimate], reference: float
) -> tuple[float, EigenEstimate] | None:
    """The loosest tolerance in :data:`TOLERANCES` at which ``run(tol)`` is within
    :data:`ACCURACY` of ``reference``, and its result; ``None`` (reported) if none is."""
    for tol in TOLERANCES:
        estimate = run(tol)
        if relative_error(estimate.values[0], reference) <= ACCURACY:
            return tol, estimate
    print(f"  {name} does not reach {ACCURACY:g} relative error even at tol {TOLERANCES[-1]:g}")
    return None


def first_below(
    name: str, budgets: Sequence[int], run: Callable[[int], TraceEstimate], stderr: float
) -> tuple[int, TraceEstimate] | None:
    """The smallest budget at which ``run(budget)``'s standard error is at most ``stderr``."""
    for budget in budgets:
        estimate = run(budget)
        if estimate.stderr <= stderr:
            return budget, estimate
    print(f"  {name} does not reach trace s.e. {stderr:.3g} within {budgets[-1]}")
    return None


def contiguous_plane(shape: Shape) -> LossSurface:
    """The flatkd plane with its evaluator's model copy in the default (contiguous) layout.

    ``Objective._replica`` is that private copy (built channels-last for convolutional models);
    it is converted in place before the first evaluation, everything else unchanged.
    """
    surface = Surface(shape.model, nn.CrossEntropyLoss(), shape.data)
    surface.objective._replica.to(memory_format=torch.contiguous_format)  # noqa: SLF001
    return surface.plane(steps=PLANE_STEPS)


def replica_layout(objective: Objective) -> str:
    """The memory layout the library chose for ``objective``'s surface evaluator."""
    weights = [p for p in objective._replica.parameters() if p.ndim == 4]  # noqa: SLF001
    channels_last = weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    return "channels-last" if channels_last else "contiguous"


def interleaved(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Wall time of every contender in each of ``rounds`` rounds; the order rotates by one a round."""
    names = list(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def paired(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios ``ours[r] / theirs[r]``."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    return statistics.median(ratios), min(ratios), max(ratios)


def benchmark(shape: Shape) -> list[str]:
    """Calibrate the accuracy targets on ``shape``, time the rounds, return the table's lines."""
    criterion = nn.CrossEntropyLoss()
    objective = Objective(shape.model, criterion, shape.data)
    pyhessian = PyHessianBackend(objective)
    print(f"\n{shape.describe(objective)}: calibrating")
    per_hvp_cost(Hessian.of(objective), shape.model, shape.inputs, shape.labels)
    exact = Hessian(shape.model, criterion, shape.data, dtype=torch.float64).eigenvalues(
        tol=1e-12, max_steps=300, seed=99
    )
    top = exact.values[0]
    print(f"  reference top eigenvalue {top:.10g} (float64 Lanczos, {exact.hvps} HVPs)")

    lanczos = first_accurate("flatkd Lanczos", lambda tol: Hessian.of(objective).eigenvalues(tol=tol), top)
    power = first_accurate(
        "PyHessian power iteration",
        lambda tol: pyhessian.eigenvalues(1, tol=tol, max_iter=PYHESSIAN_MAX_ITER),
        top,
    )
    ph_trace = pyhessian.trace(PYHESSIAN_PROBES, tol=-math.inf)
    hutchpp = first_below(
        "flatkd Hutch++", HUTCHPP_BUDGETS, lambda m: Hessian.of(objective).trace(hvps=m), ph_trace.stderr
    )
    lz_tol = lanczos[0] if lanczos else TOLERANCES[-1]
    spectrum = first_below(
        "flatkd spectrum()",
        SPECTRUM_PROBES,
        lambda p: Hessian.of(objective).spectrum(tol=lz_tol, probes=p).trace,
        ph_trace.stderr,
    )
    if lanczos is None or power is None or hutchpp is None or spectrum is None:
        return [f"{shape.name}: an accuracy target was not reached (above); nothing timed"]
    (ph_tol, ph_eig), (budget, fk_trace), probes = power, hutchpp, spectrum[0]
    bundle = Hessian.of(objective).spectrum(tol=lz_tol, probes=probes)

    def plane(backend: str) -> Callable[[], LossSurface]:
        return lambda: Surface(shape.model, criterion, shape.data, backend=backend).plane(steps=PLANE_STEPS)  # type: ignore[arg-type]

    flat_plane, contiguous = plane("flatkd")(), contiguous_plane(shape)
    layout_diff = float(np.max(np.abs(flat_plane.loss - contiguous.loss)) / np.max(np.abs(flat_plane.loss)))
    chosen = replica_layout(Surface(shape.model, criterion, shape.data).objective)

    contenders: dict[str, Callable[[], Any]] = {
        "fk eigen": lambda: Hessian.of(objective).eigenvalues(tol=lz_tol),
        "ph eigen": lambda: pyhessian.eigenvalues(1, tol=ph_tol, max_iter=PYHESSIAN_MAX_ITER),
        "fk trace": lambda: Hessian.of(objective).trace(hvps=budget),
        "ph trace": lambda: pyhessian.trace(PYHESSIAN_PROBES, tol=-math.inf),
        "fk bundle": lambda: Hessian.of(objective).spectrum(tol=lz_tol, probes=probes),
        "ph density": lambda: pyhessian.density(*PYHESSIAN_DENSITY),
        "fk plane": plane("flatkd"),
        "fk plane contiguous": lambda: contiguous_plane(shape),
        "ll plane": plane("loss-landscapes"),
    }
    print(f"  timing {len(contenders)} contenders x {shape.rounds} rounds")
    t = interleaved(contenders, shape.rounds)
    ph_bundle = [sum(parts) for parts in zip(t["ph eigen"], t["ph trace"], t["ph density"])]
    med = {name: statistics.median(times) for name, times in {**t, "ph bundle": ph_bundle}.items()}

    def trace_text(estimate: TraceEstimate) -> str:
        return f"{estimate.value:.5g} +- {estimate.stderr:.3g}"

    def ratio_cell(ours: list[float], theirs: list[float], target: float | None) -> str:
        median, low, high = paired(ours, theirs)
        verdict = "" if target is None else f"<= {target:.2f}  {'PASS' if median <= target else 'MISS'}"
        return f"{median:5.2f} [{low:.2f}-{high:.2f}]  {verdict}"

    lz = lanczos[1]
    rows = [
        (
            "top eigenvalue to 1e-4",
            f"Lanczos tol {lz_tol:g}: {lz.hvps} HVPs, err {relative_error(lz.values[0], top):.1e}, {med['fk eigen']:.2f} s",
            f"power tol {ph_tol:g}: {ph_eig.hvps} HVPs, err {relative_error(ph_eig.values[0], top):.1e}, "
            f"{med['ph eigen']:.2f} s",
            ratio_cell(t["fk eigen"], t["ph eigen"], TARGETS["eigen"]),
        ),
        (
            "  per HVP, same runs",
            f"{1000 * med['fk eigen'] / lz.hvps:.0f} ms",
            f"{1000 * med['ph eigen'] / ph_eig.hvps:.0f} ms",
            ratio_cell([a / lz.hvps for a in t["fk eigen"]], [b / ph_eig.hvps for b in t["ph eigen"]], None),
        ),
        (
            "trace at equal s.e.",
            f"Hutch++ {budget} HVPs: {trace_text(fk_trace)}, {med['fk trace']:.2f} s",
            f"Hutchinson {PYHESSIAN_PROBES} probes: {trace_text(ph_trace)}, {med['ph trace']:.2f} s",
            ratio_cell(t["fk trace"], t["ph trace"], TARGETS["trace"]),
        ),
        (
            "eigen + trace + density",
            f"spectrum() {bundle.hvps} HVPs: err {relative_error(bundle.eigen.values[0], top):.1e}, "
            f"{trace_text(bundle.trace)}, {med['fk bundle']:.2f} s",
            f"{ph_eig.hvps + ph_trace.hvps + PYHESSIAN_DENSITY[0] * PYHESSIAN_DENSITY[1]} HVPs, "
            f"{med['ph bundle']:.2f} s",
            ratio_cell(t["fk bundle"], ph_bundle, TARGETS["bundle"]),
        ),
        (
            f"{PLANE_STEPS}x{PLANE_STEPS} plane",
            f"{chosen} (library's choice): {med['fk plane']:.2f} s",
            f"loss-landscapes: {med['ll plane']:.2f} s",
            ratio_cell(t["fk plane"], t["ll plane"], TARGETS["plane"]),
        ),
        (
            "  same, contiguous layout",
            f"contiguous: {med['fk plane contiguous']:.2f} s",
            f"loss-landscapes: {med['ll plane']:.2f} s",
            ratio_cell(t["fk plane contiguous"], t["ll plane"], None),
        ),
        (
            "  layout: contiguous/chosen",
            f"max |loss diff| {layout_diff:.1e} rel.",
            "",
            ratio_cell(t["fk plane contiguous"], t["fk plane"], None),
        ),
    ]
    header = ("", "flatkd (median time)", "reference, same rounds (median time)", "ratio median [min-max], target")
    widths = [max(len(r[k]) for r in (header, *rows)) for k in range(4)]
    lines = [shape.describe(objective)]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in (header, *rows)]
    return lines


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """``fn()`` and its best wall time over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def per_hvp_cost(hessian: Hessian, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One HVP through the cached graph and one rebuilding it, in units of one forward+backward."""
    criterion = nn.CrossEntropyLoss()
    params = [p for p in model.parameters()]

    def fb() -> None:
        torch.autograd.grad(criterion(model(x), y), params, allow_unused=True)

    fb()
    _, fb_time = timed(lambda: [fb() for _ in range(10)])
    v = torch.randn(hessian.dim, generator=torch.Generator().manual_seed(1))
    hessian.operator.matvec(v)
    _, hvp_time = timed(lambda: [hessian.operator.matvec(v) for _ in range(10)])
    rebuilt = Hessian(model, criterion, [(x, y)], cache_graph=False).operator
    _, rebuilt_time = timed(lambda: [rebuilt.matvec(v) for _ in range(10)])
    print(
        f"  one HVP = {hvp_time / fb_time:.2f} FB through the cached graph, {rebuilt_time / fb_time:.2f} FB "
        f"rebuilding it (FB = one forward + backward = {1000 * fb_time / 10:.1f} ms)"
    )


class PhaseTimer:
    """A progress factory that adds up the wall time spent inside each progress context, by ``desc``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, *, total: int | None = None, desc: str | None = None) -> PhaseTimer.Bar:
        return PhaseTimer.Bar(self, desc or "?")

    class Bar:
        def __init__(self, timer: PhaseTimer, desc: str) -> None:
            self.timer, self.desc = timer, desc

        def __enter__(self) -> PhaseTimer.Bar:
            self.start = time.perf_counter()
            return self

        def __exit__(self, *exc: object) -> None:
            elapsed = time.perf_counter() - self.start
            self.timer.seconds[self.desc] = self.timer.seconds.get(self.desc, 0.0) + elapsed

        def update(self, n: float = 1) -> None:
            return None

        def set_postfix(self, *args: Any, **kwargs: Any) -> None:
            return None


def rank_modalities_phases() -> None:
    """Per-phase time of one network's :func:`measure_network` (module docstring)."""
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    network = SelectExit(build_model("cpu-tiny", "mv", num_classes=CLASSES).eval(), -1)
    clips = torch.randn(32, 3, 2, 112, 112, generator=generator)
    labels = torch.randint(0, CLASSES, (32,), generator=generator)
    criterion = nn.CrossEntropyLoss()
    print("\nflatkd rank-modalities, one cpu-tiny MV network (32 clips x 3 segments x 2 x 112 x 112)")
    for name, settings in (("defaults", FlatnessSettings()), ("--quick", FlatnessSettings.quick())):
        data = [(clips[: settings.samples], labels[: settings.samples])]
        objective = Objective(network, criterion, data)
        _, forward = timed(lambda: objective.evaluate(objective.theta), 5)
        timer = PhaseTimer()
        result, total = timed(
            lambda: measure_network(network, criterion, data, settings, modality="mv", exit=3, progress=timer)
        )
        timer.seconds["other (set-up, centre, record)"] = total - sum(timer.seconds.values())
        print(
            f"  {name}: {settings.samples} clips, {result.record.hvps} HVPs, "
            f"{settings.line_steps + settings.plane_steps**2} surface points, {settings.sharpness_steps} gradients: "
            f"{total:.1f} s = {total / forward:.0f} F (F = one forward pass = {1000 * forward:.0f} ms)"
        )
        for phase, seconds in timer.seconds.items():
            print(f"    {phase:<34} {seconds:6.1f} s  {seconds / forward:6.0f} F")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", action="store_true", help="also time rank-modalities' phases (about 2 min)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    tables = [benchmark(shape) for shape in shapes()]
    print()
    for lines in tables:
        print("\n".join(lines) + "\n")
    print(f"total {time.perf_counter() - start:.0f} s, 1 thread")
    if args.phases:
        rank_modalities_phases()


if __name__ == "__main__":
    main()
