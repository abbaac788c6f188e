"""Training throughput and data wait per modality, CPU preset, real synthetic set and cache.

For each modality, one epoch of the backbone stage of ``cpu-tiny`` (the real :func:`fit` loop,
real ``ClipDataset`` reading the modality cache through a ``DataLoader``) reports

- clips/s of the training pass and the share of it spent waiting for the next batch (``data_wait``,
  measured by the loop itself; target < 10%);
- the reference measured in the same run: the same epoch on the same clips held in memory
  (no decoding, no cache reads, no augmentation), and the ratio of the two throughputs.

The synthetic set (``flatkd data synth`` defaults) and its cache are built on first use in
``--data`` (default: a folder in the system temp dir, reused by later runs; delete it after
changing the data code).

Usage::

    .venv/bin/python benchmarks/train.py [--data DIR] [--workers 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from flatkd.config import from_dict
from flatkd.data.cache import build_cache, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.synth.build import generate_synthetic
from flatkd.modalities import MODALITIES
from flatkd.models import build_model
from flatkd.runs.data_source import open_split_data, resolve_data_source
from flatkd.runs.rundir import RunDir
from flatkd.train import ExitCrossEntropy, TrainConfig, fit_loss

TARGET_WAIT = 0.10


class InMemoryClips(Dataset):
    """The clips of ``dataset``'s epoch 0, materialised once: the no-I/O reference."""

    def __init__(self, dataset: Dataset):
        self.items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        return self.items[index]


def ensure_synthetic(root: Path) -> Path:
    """Generate the synthetic set and its default cache in ``root`` unless they are there."""
    if not (root / "splits").is_dir():
        logging.warning("generating the synthetic set in %s", root)
        generate_synthetic(root, jobs=2)
    if not default_cache_dir(root).is_dir():
        logging.warning("caching it in %s", default_cache_dir(root))
        build_cache(list_videos(root), default_cache_dir(root), jobs=2)
    return root


def one_epoch(
    modality: str, train: Dataset, val: Dataset, config: TrainConfig, workdir: Path
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(config.preset, modality, num_classes=10)
    model.set_trainable("backbone")
    rows: list[dict[str, Any]] = []
    fit_loss(
        model,
        train,
        val,
        RunDir(workdir).stage_files("bench", modality),
        stage="bench",
        config=config,
        stage_config=config.backbone,
        loss=ExitCrossEntropy((-1,)),
        monitor=(-1,),
        on_epoch_end=rows.append,
    )
    return rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "flatkd-bench-synth")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    root = ensure_synthetic(args.data)
    source = resolve_data_source(RunDir(tempfile.mkdtemp()), root)
    settings = {"workers": args.workers, "backbone": {"epochs": 1}}
    config = from_dict(TrainConfig, settings)
    reference = from_dict(TrainConfig, settings | {"workers": 0})
    print(
        f"cpu-tiny, {config.num_segments} segments x {config.input_size} px, batch {config.batch_size}, "
        f"{args.threads} thread(s), {args.workers} loader worker(s)"
    )
    print(
        f"{'modality':9s} {'clips/s':>8s} {'data wait':>10s} {'in-memory clips/s':>18s} {'ratio':>6s}  target"
    )
    for modality in MODALITIES:
        data = open_split_data(source, config, (modality,))
        with tempfile.TemporaryDirectory() as work:
            real = one_epoch(modality, data.train, data.val, config, Path(work) / "real")
            memory = one_epoch(
                modality, InMemoryClips(data.train), data.val, reference, Path(work) / "memory"
            )
        verdict = "ok" if real["data_wait"] < TARGET_WAIT else "MISSED"
        speed, reference_speed = real["clips_per_s"], memory["clips_per_s"]
        print(
            f"{modality:9s} {speed:8.1f} {real['data_wait']:10.1%} {reference_speed:18.1f} "
            f"{speed / reference_speed:6.2f}  data wait < {TARGET_WAIT:.0%}: {verdict}"
        )


if __name__ == "__main__":
    main()
