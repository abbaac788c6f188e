"""Random probe vectors, drawn from a caller-owned seeded generator (never the global RNG)."""

from __future__ import annotations

import torch


def rademacher(
    dim: int, count: int, *, generator: torch.Generator, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A ``dim x count`` matrix of independent entries, +1 or -1 with probability 1/2 each.

    >>> import torch
    >>> draw = dict(dtype=torch.float64, device=torch.device("cpu"))
    >>> z = rademacher(1000, 2, generator=seeded_generator(0, torch.device("cpu")), **draw)
    >>> z.shape, bool((z.abs() == 1).all())
    (torch.Size([1000, 2]), True)
    >>> torch.equal(z, rademacher(1000, 2, generator=seeded_generator(0, torch.device("cpu")), **draw))
    True
    """
    bits = torch.randint(0, 2, (dim, count), generator=generator, device=device)
    return (2 * bits - 1).to(dtype)


def gaussian(dim: int, *, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A standard normal vector of length ``dim``."""
    return torch.randn(dim, generator=generator, dtype=dtype, device=device)


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: same seed, same probes."""
    return torch.Generator(device=device).manual_seed(seed)
