"""Random filter-normalised directions in parameter space (Li et al. 2018).

Loss surfaces along raw random directions are meaningless across networks: ReLU networks are
invariant to rescaling a filter's weights, so a step of fixed length is large for a layer with
small weights and tiny for one with large weights. Li, Xu, Taylor, Studer & Goldstein
("Visualizing the loss landscape of neural nets", NeurIPS 2018, §4; github.com/tomgoldstein/
loss-landscape, ``net_plotter.py``) draw a Gaussian direction :math:`d` and rescale each
*filter* to the norm of the corresponding filter of the trained weights :math:`\\theta`:

.. math:: d_{i,j} \\leftarrow \\frac{d_{i,j}}{\\|d_{i,j}\\|} \\, \\|\\theta_{i,j}\\|,

where :math:`d_{i,j}` is filter :math:`j` (slice along the first, output dimension) of the
parameter tensor :math:`i` (convolution kernels and linear weights alike). A step of 1 along
:math:`d` then moves each filter by its own norm, comparable across layers and networks.

One-dimensional tensors (biases and BatchNorm weights and biases) are handled as in Li et al.:
``biasbn="zero"`` (their default ``--xignore biasbn``) sets the direction to zero there, so the
surface moves only weights; ``biasbn="filter"`` treats each such tensor as one filter, rescaled
to the tensor's norm (a tensor of zeros, like a fresh BatchNorm bias, gets a zero direction
rather than a division by zero). A filter whose weights are all zero gets a zero direction too.
"""

from __future__ import annotations

from typing import Literal

import torch

from flatkd.landscape.estimators.probes import gaussian
from flatkd.landscape.params import ParameterSpace

BiasBN = Literal["zero", "filter"]


def filter_normalized_direction(
    space: ParameterSpace, theta: torch.Tensor, *, generator: torch.Generator, biasbn: BiasBN = "zero"
) -> torch.Tensor:
    """A Gaussian direction (flat, like ``theta``) with every filter rescaled to ``theta``'s.

    A linear layer's weight rows (norms 5 and 1) are its filters; its bias is left alone:

    >>> import torch
    >>> space = ParameterSpace(("weight", "bias"), (torch.Size([2, 3]), torch.Size([2])))
    >>> theta = torch.tensor([3.0, 0.0, 4.0, 0.0, 1.0, 0.0, 0.5, -0.5], dtype=torch.float64)
    >>> d = space.unflatten(filter_normalized_direction(space, theta, generator=torch.Generator().manual_seed(0)))
    >>> [round(norm, 6) for norm in torch.linalg.vector_norm(d["weight"], dim=1).tolist()], d["bias"].tolist()
    ([5.0, 1.0], [0.0, 0.0])
    """
    if biasbn not in ("zero", "filter"):
        raise ValueError(f"biasbn must be 'zero' or 'filter', got {biasbn!r}")
    direction = gaussian(space.dim, generator=generator, dtype=theta.dtype, device=theta.device)
    weights = space.unflatten(theta)
    for name, d in space.unflatten(direction).items():
        w = weights[name]
        if d.ndim <= 1:
            if biasbn == "zero":
                d.zero_()
            else:
                d.mul_(_ratio(torch.linalg.vector_norm(w), torch.linalg.vector_norm(d)))
        else:
            reduce = tuple(range(1, d.ndim))
            norms = [torch.linalg.vector_norm(t, dim=reduce, keepdim=True) for t in (w, d)]
            d.mul_(_ratio(*norms))
    return direction


def _ratio(target: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """``target / current``, and 0 where either is 0."""
    safe = torch.where(current > 0, current, torch.ones_like(current))
    return torch.where((current > 0) & (target > 0), target / safe, torch.zeros_like(target))
