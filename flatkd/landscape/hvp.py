"""The Hessian of the subset's mean loss as a matrix-free operator (Hessian-vector products).

For :math:`L(\\theta) = \\sum_b w_b L_b(\\theta)` (:mod:`.objective`), the product with the Hessian is
Pearlmutter's trick (Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation
1994): differentiate the gradient a second time in the direction :math:`v`,

.. math:: H v = \\nabla_\\theta \\big( \\nabla_\\theta L(\\theta)^\\top v \\big)
          = \\sum_b w_b \\, \\nabla_\\theta \\big( \\nabla_\\theta L_b(\\theta)^\\top v \\big),

with reverse-over-reverse autodiff. Two ways to pay for it (measured on the benchmark CNN, unit
FB = one forward + backward; ``benchmarks/landscape.py``):

* **cached graph**: build :math:`\\nabla L` once with ``create_graph=True`` and keep its graph; each
  product is then one backward pass through it (1.5-1.7 FB). Used by default when the data is one
  batch, or with ``cache_graph=True`` for several (memory grows with the number of batches).
* **rebuilt per batch**: for each batch a forward, a double backward and the product (2.8-3.2 FB),
  the batch results weighted by batch size; memory stays at one batch's graph.

Forward-over-reverse (``torch.func.jvp`` of ``grad``, 5.2 FB) and batching several vectors through
the cached graph (``is_grads_batched``, 2.5 FB per product) were both slower on CPU (measured once,
same CNN at 32x32 inputs; not part of the benchmark), so neither is used.

With several processes (:mod:`.objective`) each computes the product of its share
:math:`\\nabla^2 L_r\\, v` and one all-reduce sums them: :math:`H v = \\sum_r \\nabla^2 L_r\\, v`.
"""

from __future__ import annotations

import torch

from flatkd.landscape.linop import LinearOperator
from flatkd.landscape.objective import Objective


class HessianOperator(LinearOperator):
    """:math:`\\nabla^2_\\theta L` at the objective's trained weights, applied by HVPs.

    Args:
        objective: the loss over the fixed data subset.
        cache_graph: keep the double-backward graph between products; ``None`` (default) caches
            exactly when the data is a single batch.
    """

    def __init__(self, objective: Objective, *, cache_graph: bool | None = None) -> None:
        super().__init__(objective.dim, objective.dtype, objective.device)
        self.objective = objective
        self.cache_graph = len(objective.batches) == 1 if cache_graph is None else cache_graph
        self._leaf: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None

    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.objective.env.all_reduce(self._local_matvec(vector))

    def _local_matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """The product with this process's share of the Hessian."""
        if self.cache_graph:
            leaf, gradient = self._cached_gradient()
            return _differentiate(gradient, leaf, vector, retain_graph=True)
        total = torch.zeros_like(vector)
        for batch in self.objective.batches:
            leaf = self.objective.theta.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.objective.batch_loss(leaf, batch), leaf, create_graph=True)
            total += batch.weight * _differentiate(gradient, leaf, vector, retain_graph=False)
        return total

    def _cached_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._gradient is None:
            leaf = self.objective.theta.detach().requires_grad_(True)
            (self._gradient,) = torch.autograd.grad(self.objective.loss(leaf), leaf, create_graph=True)
            self._leaf = leaf
        assert self._leaf is not None
        return self._leaf, self._gradient


def _differentiate(
    gradient: torch.Tensor, leaf: torch.Tensor, vector: torch.Tensor, *, retain_graph: bool
) -> torch.Tensor:
    """:math:`\\nabla (g^\\top v)`; zero where the gradient does not depend on the parameters
    (a loss linear in them has no graph to differentiate)."""
    if not gradient.requires_grad:
        return torch.zeros_like(vector)
    (product,) = torch.autograd.grad(
        gradient, leaf, grad_outputs=vector, retain_graph=retain_graph, materialize_grads=True
    )
    return product
