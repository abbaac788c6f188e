"""The explicit Hessian matrix of a small model: the exact reference the estimators are tested on.

:func:`dense_hessian` builds :math:`\\nabla^2_\\theta L` column by column with
:func:`torch.autograd.functional.hessian` (autograd's own Jacobian-of-gradient, independent of
:mod:`.hvp`'s graph caching). It costs ``dim`` backward passes and ``dim**2`` memory: use it only
for models of at most a few thousand parameters, in float64.
"""

from __future__ import annotations

import torch

from flatkd.landscape.objective import Objective


def dense_hessian(objective: Objective) -> torch.Tensor:
    """The ``dim x dim`` Hessian of ``objective`` at its trained weights, symmetrised."""
    matrix = torch.autograd.functional.hessian(objective.loss, objective.theta)
    return (matrix + matrix.T) / 2

