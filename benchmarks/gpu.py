"""GPU readiness: training throughput, Hessian-vector products and NCCL, in one script (≤ 8 min).

Runs with only torch and numpy (PyAV is not needed: the clips are synthetic tensors of the real
shapes), after ``pip install --no-deps -e .`` on a GPU image. Every training row goes through
flatkd's one training loop (:func:`flatkd.train.fit_loss`, the DataLoader with pinned memory,
``non_blocking`` copies, bf16 autocast, the loss read from the device in blocks of steps); the
throughput is the loop's own ``clips_per_s`` of the second epoch (the first warms up cuDNN and
the compiler), and ``frames/s = clips/s x segments``.

1. ``train``: the ``paper`` preset per modality (I-frame ResNet-50, MV/residual ResNet-18) at
   224 px, 3 segments: fp32 and bf16, with and without ``channels_last`` and ``torch.compile``
   (every precision x layout and the compiled bf16 rows for the I-frame network, the default and
   the recommended settings for the others), peak GPU memory, and IC training with the frozen backbone (stage ``ic-ce``). Goal:
   the I-frame ResNet-50 at >= 3000 frames/s in bf16 on an H100/H200-class GPU (about what
   optimised ResNet-50 training reaches there).
2. ``hessian``: Lanczos and Hutchinson HVPs per second on the I-frame network, and the top
   eigenvalue and a Hutchinson trace (the same probe vectors) of a small network in float64 on
   the CPU and on the device: their relative difference (target <= 1e-6).
3. ``nccl``: a one-process NCCL group (gloo on the CPU): a ``train`` row through flatkd's
   collective code paths (gradient all-reduce, buffer broadcast, gather, SyncBatchNorm
   conversion), forced on at world size 1, against the same row without them; all-reduce
   bandwidth of a 256 MB buffer.

One table on stdout and ``gpu.csv`` in ``--out`` (default ``$OUT``, else the current folder).

Usage::

    python benchmarks/gpu.py                     # on a GPU machine, all sections
    python benchmarks/gpu.py --device cpu --tiny # the same code paths in seconds (the test)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import Dataset

from flatkd.config import from_dict
from flatkd.fileio import atomic_open
from flatkd.landscape import Hessian, SelectExit
from flatkd.modalities import CHANNELS, MODALITIES
from flatkd.models import build_model
from flatkd.runs.rundir import RunDir
from flatkd.train import ExitCrossEntropy, TrainConfig, fit_loss
from flatkd.train.distributed import Dist

CLASSES = 101
GOAL_FRAMES_PER_S = 3000.0
AGREEMENT = 1e-6
COLUMNS = ("section", "case", "value", "unit", "note")


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sizes one run uses: the paper's on a GPU, a few seconds' worth with ``--tiny``."""

    preset: str
    size: int
    segments: int
    batch: int
    steps: int
    workers: int
    hvps: int
    allreduce_mb: int


#: workers 0: the batches are collated in the main process while the GPU runs the previous step
#: (the loop never waits for the device), and no worker needs shared memory, which containers
#: often limit to 64 MB (a 224 px I-frame batch is 116 MB); ``--workers`` changes it
PAPER = Scale("paper", 224, 3, 64, 24, 0, 40, 256)
TINY = Scale("cpu-tiny", 32, 2, 4, 3, 0, 4, 4)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One training configuration of the grid."""

    modality: str
    bf16: bool
    channels_last: bool
    compile: bool = False
    stage: str = "backbone"

    @property
    def name(self) -> str:
        parts = [self.modality, self.stage, "bf16" if self.bf16 else "fp32"]
        return " ".join(parts + ["channels_last"] * self.channels_last + ["compile"] * self.compile)


class FixedClips(Dataset):
    """``length`` clips of one fixed random tensor per modality (no decoding: the loader's cost is
    the collation and the pinned copy alone), labels cycling over the classes."""

    def __init__(self, modality: str, length: int, segments: int, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.modality, self.length = modality, length
        self.clip = torch.randn(segments, CHANNELS[modality], size, size, generator=generator)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        return {self.modality: self.clip}, index % CLASSES


@dataclasses.dataclass(frozen=True)
class _CollectiveDist(Dist):
    """A :class:`Dist` that takes the collective code paths at world size 1 (an initialised
    one-process group), so one GPU exercises what N GPUs run."""

    @property
    def distributed(self) -> bool:
        return True


def grid(device: torch.device, with_compile: bool) -> list[Variant]:
    """The training rows: for the I-frame network every precision x layout eagerly and the
    compiled forward in the fastest precision (bf16 on a GPU; compilation takes a minute a row),
    the default (fp32) and the recommended (bf16 + channels_last) settings for MV and residual,
    and IC training with the frozen backbone. On the CPU bf16 autocast is off, so only fp32."""
    precisions = (False, True) if device.type == "cuda" else (False,)
    rows = [Variant("iframe", p, c) for p in precisions for c in (False, True)]
    rows += [Variant("iframe", precisions[-1], c, True) for c in (False, True)] if with_compile else []
    for modality in MODALITIES[1:]:
        rows += [Variant(modality, False, False), Variant(modality, precisions[-1], True)]
    return rows + [Variant("iframe", precisions[-1], True, stage="ic-ce")]


def train_row(variant: Variant, scale: Scale, env: Dist, workdir: Path) -> dict[str, float]:
    """Two epochs of ``variant`` through :func:`fit_loss`; the second epoch's throughput, data
    wait and the peak device memory."""
    settings = {
        "preset": scale.preset, "input_size": scale.size, "num_segments": scale.segments,
        "batch_size": scale.batch, "workers": scale.workers, "device": env.device.type,
        "bf16": variant.bf16, "channels_last": variant.channels_last, "compile": variant.compile,
        "sync_bn": True, "backbone": {"epochs": 2, "optim": {"name": "sgd", "lr": 0.01}},
        "ics": {"epochs": 2, "optim": {"name": "sgd", "lr": 0.01}},
    }  # fmt: skip
    config = from_dict(TrainConfig, settings)
    torch.manual_seed(0)
    model = build_model(config.preset, variant.modality, CLASSES)
    model.set_trainable("backbone" if variant.stage == "backbone" else "ics")
    exits = (-1,) if variant.stage == "backbone" else tuple(range(model.num_exits - 1))
    rows: list[dict[str, Any]] = []
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(env.device)
    fit_loss(
        model,
        FixedClips(variant.modality, scale.batch * scale.steps, scale.segments, scale.size),
        None,  # type: ignore[arg-type]  # no validation: the last epoch is kept
        RunDir(workdir).stage_files(variant.stage, variant.modality),
        stage=variant.stage,
        config=config,
        stage_config=config.backbone if variant.stage == "backbone" else config.ics,
        loss=ExitCrossEntropy(exits),
        monitor=exits,
        env=env,
        on_epoch_end=rows.append,
    )
    peak = torch.cuda.max_memory_allocated(env.device) / 2**30 if env.device.type == "cuda" else float("nan")
    last = rows[-1]
    return {"clips_per_s": last["clips_per_s"], "data_wait": last["data_wait"], "peak_gb": peak}


def training(scale: Scale, env: Dist, with_compile: bool) -> Iterator[dict[str, Any]]:
    for variant in grid(env.device, with_compile):
        with tempfile.TemporaryDirectory() as work:
            result = train_row(variant, scale, env, Path(work))
        frames = result["clips_per_s"] * scale.segments
        note = f"data wait {result['data_wait']:.0%}, peak {result['peak_gb']:.1f} GiB"
        if variant.modality == "iframe" and variant.stage == "backbone" and variant.bf16 and scale.preset == "paper":
            note += f"; goal >= {GOAL_FRAMES_PER_S:g}: {'PASS' if frames >= GOAL_FRAMES_PER_S else 'MISSED'}"
        yield {"section": "train", "case": variant.name, "value": frames, "unit": "frames/s", "note": note}


def _timed(device: torch.device, work: Callable[[], Any]) -> tuple[Any, float]:
    _synchronise(device)
    began = time.perf_counter()
    result = work()
    _synchronise(device)
    return result, time.perf_counter() - began


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hessian(preset: str, modality: str, scale: Scale, batch: int, device: torch.device, dtype: torch.dtype) -> Hessian:
    torch.manual_seed(0)
    model = build_model(preset, modality, CLASSES).to(device, dtype).eval()
    inputs = torch.randn(batch, scale.segments, CHANNELS[modality], scale.size, scale.size, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(batch) % CLASSES
    return Hessian(SelectExit(model, -1), F.cross_entropy, [(inputs.to(device, dtype), labels.to(device))])


def hessian(scale: Scale, device: torch.device) -> Iterator[dict[str, Any]]:
    """HVPs/s of Lanczos and Hutchinson on the I-frame network (one batch, float32), and the
    CPU-vs-device agreement of a small network's top eigenvalue and trace (float64)."""
    big = _hessian(scale.preset, "iframe", scale, max(2, scale.batch // 4), device, torch.float32)
    eigen, seconds = _timed(device, lambda: big.eigenvalues(top_k=1, max_steps=scale.hvps, tol=0.0))
    yield {"section": "hessian", "case": f"lanczos {scale.preset} iframe ({big.dim:,} parameters)",
           "value": eigen.hvps / seconds, "unit": "HVPs/s", "note": f"{eigen.hvps} HVPs in {seconds:.1f}s"}  # fmt: skip
    trace, seconds = _timed(device, lambda: big.trace(method="hutchinson", hvps=scale.hvps))
    yield {"section": "hessian", "case": f"hutchinson {scale.preset} iframe", "value": trace.hvps / seconds,
           "unit": "HVPs/s", "note": f"{trace.hvps} HVPs in {seconds:.1f}s"}  # fmt: skip
    cpu = _small_estimates(torch.device("cpu"))
    other = cpu if device.type == "cpu" else _small_estimates(device)  # no accelerator: the code path only
    for index, name in enumerate(("top eigenvalue", "hutchinson trace (same probes)")):
        difference = abs(cpu[index] - other[index]) / max(abs(cpu[index]), 1e-300)
        verdict = "PASS" if difference <= AGREEMENT else "MISSED"
        yield {"section": "hessian", "case": f"cpu vs {device.type}: {name}, cpu-tiny mv float64", "value": difference,
               "unit": "relative", "note": f"{cpu[index]:.6g} vs {other[index]:.6g}; <= {AGREEMENT:g}: {verdict}"}  # fmt: skip


def _small_estimates(device: torch.device) -> tuple[float, float]:
    """Top eigenvalue (Lanczos to 1e-6: the Ritz value is then far closer) and a Hutchinson trace over 8 fixed Rademacher probes
    (drawn on the CPU, so every device sees the same ones) of ``cpu-tiny``'s MV network on 16 px
    inputs, float64."""
    small = _hessian("cpu-tiny", "mv", dataclasses.replace(TINY, size=16), 4, device, torch.float64)
    signs = torch.randint(0, 2, (small.dim, 8), generator=torch.Generator().manual_seed(2))
    probes = (signs.double() * 2 - 1).to(device)
    top = small.eigenvalues(top_k=1, tol=1e-6, max_steps=200).values[0]
    return float(top), float(small.trace(method="hutchinson", probes=probes).value)


@contextlib.contextmanager
def one_process_group(device: torch.device) -> Iterator[Dist]:
    """A one-process NCCL (CUDA) or gloo (CPU) group on a free local port, torn down after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        yield _CollectiveDist(rank=0, world_size=1, device=device)
    finally:
        dist.destroy_process_group()


def collectives(scale: Scale, device: torch.device) -> Iterator[dict[str, Any]]:
    """A training row through the collective code paths, beside the same row without them, and
    all-reduce bandwidth."""
    variant = Variant("mv", device.type == "cuda", device.type == "cuda")
    with tempfile.TemporaryDirectory() as work:
        alone = train_row(variant, scale, Dist(device=device), Path(work) / "alone")
    backend = "nccl" if device.type == "cuda" else "gloo"
    with one_process_group(device) as env, tempfile.TemporaryDirectory() as work:
        grouped = train_row(variant, scale, env, Path(work) / "grouped")
        buffer = torch.ones(scale.allreduce_mb * 2**20 // 4, device=device)
        env.all_reduce(buffer)  # warm-up
        _, seconds = _timed(device, lambda: [env.all_reduce(buffer) for _ in range(5)])
    ratio = grouped["clips_per_s"] / alone["clips_per_s"]
    yield {"section": backend, "case": f"{variant.name}: collective paths / alone", "value": ratio,
           "unit": "ratio", "note": f"{grouped['clips_per_s'] * scale.segments:.0f} vs {alone['clips_per_s'] * scale.segments:.0f} frames/s"}  # fmt: skip
    yield {"section": backend, "case": f"all_reduce {scale.allreduce_mb} MB (world size 1)",
           "value": 5 * scale.allreduce_mb / 1024 / seconds, "unit": "GB/s", "note": "bus bandwidth of one rank"}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="cpu-tiny sizes: the code paths in seconds")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (minutes on a CPU)")
    parser.add_argument("--sections", default="train,hessian,nccl", help="comma-separated subset to run")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers of the training rows")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args(argv)
    device, scale = torch.device(args.device), TINY if args.tiny else PAPER
    if device.type == "cpu" and not args.tiny:
        parser.error("the paper sizes need a GPU (hours on a CPU): pass --tiny to run the code paths")
    if args.workers is not None:
        scale = dataclasses.replace(scale, workers=args.workers)
    sections = {
        "train": lambda: training(scale, Dist(device=device), not args.no_compile),
        "hessian": lambda: hessian(scale, device),
        "nccl": lambda: collectives(scale, device),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"flatkd GPU check on {name}: torch {torch.__version__}, {scale}", flush=True)
    print(f"{'section':8s} {'case':58s} {'value':>12s} {'unit':9s} note", flush=True)
    rows = []
    for section in args.sections.split(","):
        for row in sections[section]():
            rows.append(row)
            print(f"{row['section']:8s} {row['case']:58s} {row['value']:12.4g} {row['unit']:9s} {row['note']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu.csv"
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
