"""DDP on 2 CPU processes (gloo) trains like one process with the same global batch.

What "equal" can mean here: both runs see the same global batches (the same DistributedSampler
permutation, split over the ranks), normalise with the same global-batch BatchNorm statistics
(``sync_bn``) and average the same per-clip gradients. The arithmetic is the same up to the order
of floating-point sums (per-rank partial sums + all-reduce vs. one reduction over the batch), so
weights agree to float32 rounding (~1e-6 relative), not bit for bit. Without synchronised
BatchNorm each rank normalises over half the batch, a genuinely different computation: the test
checks that this is orders of magnitude further away, so the tolerance is meaningful. The test uses
SGD: Adam's first steps move each weight by about lr * g / |g|, which turns rounding-level
differences of near-zero gradients into differences of order lr.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.clips import StandInClips

from flatkd.config import from_dict
from flatkd.fileio import load_tensors
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import SplitData, train_network
from flatkd.train import TrainConfig, init_from_env
from flatkd.train.loop import DivergenceError


def _config(sync_bn: bool) -> TrainConfig:
    sgd = {"name": "sgd", "lr": 0.02}
    settings = {
        "batch_size": 8,
        "eval_batch_size": 8,
        "input_size": 32,
        "num_segments": 2,
        "workers": 0,
        "sync_bn": sync_bn,
        "backbone": {"epochs": 1, "optim": sgd},
        "ics": {"epochs": 1, "optim": sgd},
    }
    return from_dict(TrainConfig, settings)


def _train(run_path: str, sync_bn: bool) -> None:
    data = SplitData(
        StandInClips(32, noise=2.0),
        StandInClips(11, train=False, seed=1),
        StandInClips(9, train=False, seed=2),
    )
    train_network(RunDir(run_path), "mv", _config(sync_bn), data, num_classes=4, env=init_from_env("cpu"))


def _worker(rank: int, port: int, root: str) -> None:
    os.environ |= {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
    }
    torch.set_num_threads(1)
    try:
        for sync_bn in (True, False):
            _train(f"{root}/ddp-{sync_bn}", sync_bn)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _max_difference(a: Path, b: Path) -> float:
    x, y = load_tensors(a), load_tensors(b)
    assert x.keys() == y.keys()
    return max((x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].is_floating_point())


def test_two_gloo_processes_train_like_one(tmp_path: Path) -> None:
    _train(str(tmp_path / "single"), sync_bn=True)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    single, synced, unsynced = (RunDir(tmp_path / n) for n in ("single", "ddp-True", "ddp-False"))
    for stage in ("backbone", "ic-ce"):
        close = _max_difference(single.checkpoint_path(stage, "mv"), synced.checkpoint_path(stage, "mv"))
        far = _max_difference(single.checkpoint_path(stage, "mv"), unsynced.checkpoint_path(stage, "mv"))
        assert close < 1e-4 and far > 100 * close, (stage, close, far)
    for split, size in (("val", 11), ("test", 9)):  # gathered from both ranks in dataset order
        a, labels_a = single.load_logits("ic-ce", "mv", split)
        b, labels_b = synced.load_logits("ic-ce", "mv", split)
        assert a.shape == (size, 4, 4) and torch.equal(labels_a, labels_b)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    metrics_a, metrics_b = single.read_metrics(), synced.read_metrics()
    assert len(metrics_a) == len(metrics_b) == 2
    for column in ("train_loss", "train_acc", "val_loss", "val_acc"):
        a, b = torch.tensor(metrics_a[column].values), torch.tensor(metrics_b[column].values)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert single.read_macs() == synced.read_macs()


class _NanOnRankOne(StandInClips):
    """Stand-in clips that are NaN in the process of rank 1 only."""

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        inputs, label = super().__getitem__(index)
        if os.environ.get("RANK") == "1":
            inputs = {m: torch.full_like(x, float("nan")) for m, x in inputs.items()}
        return inputs, label


def _diverging_worker(rank: int, port: int, root: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                   "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}  # fmt: skip
    torch.set_num_threads(1)
    data = SplitData(_NanOnRankOne(16), StandInClips(4, train=False, seed=1), StandInClips(4, train=False, seed=2))
    try:
        train_network(RunDir(f"{root}/run"), "mv", _config(sync_bn=False), data, num_classes=4, env=init_from_env("cpu"))
    except DivergenceError as error:
        Path(f"{root}/rank{rank}.txt").write_text(str(error))
    finally:
        dist.destroy_process_group()


def test_a_loss_that_diverges_on_one_process_stops_every_process(tmp_path: Path) -> None:
    context = mp.start_processes(_diverging_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=False)
    for _ in range(120):  # without the shared check, rank 0 waits in the all-reduce for good
        if context.join(timeout=1):
            break
    else:
        for process in context.processes:
            process.kill()
        raise AssertionError("a process kept waiting after the other diverged")
    messages = [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)]
    assert messages[0] == messages[1] and "became nan at epoch 0, step 0" in messages[0], messages
