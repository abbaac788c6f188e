"""Deterministic seeds: same seed => same numbers, in one process, after a resume and under DDP.

Every epoch re-seeds Python, NumPy and torch from ``derive_seed(seed, stage, epoch)``, so an epoch's
randomness does not depend on what ran before it (a resumed run replays exactly the epochs an
uninterrupted one runs). DataLoader workers get their seeds from the loader's generator (seeded
per epoch too) and :func:`worker_init_fn` passes them on to Python and NumPy.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch


def derive_seed(*keys: int | str) -> int:
    """A 32-bit seed from integers and strings via NumPy's ``SeedSequence`` (well mixed, so
    neighbouring epochs or seeds give unrelated streams)."""
    entropy = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker initialiser: seed Python and NumPy from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)
