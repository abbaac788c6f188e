"""Symmetric linear operators seen only through products, with a count of the products.

Every spectral estimator in :mod:`flatkd.landscape` takes a :class:`LinearOperator`: something
with a dimension, a dtype and device, :meth:`~LinearOperator.matvec` /
:meth:`~LinearOperator.matmat`, and ``hvp_count``, the number of operator-vector products made
so far (for the Hessian operator, Hessian-vector products: the unit of cost). The design follows
curvlinops (Dangel et al., github.com/f-dangel/curvlinops): estimators are small functions of an
operator, and the same estimator runs on the matrix-free Hessian of a network or on an explicit
matrix in tests (:class:`DenseOperator`).

>>> import torch
>>> op = DenseOperator(torch.diag(torch.tensor([3.0, 1.0])))
>>> op.matvec(torch.tensor([1.0, 1.0])).tolist(), op.hvp_count
([3.0, 1.0], 1)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from flatkd.progress import ProgressBar


class LinearOperator(ABC):
    """A symmetric ``dim x dim`` operator applied to vectors of ``dtype`` on ``device``."""

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device) -> None:
        self.dim = dim
        self.dtype = dtype
        self.device = device
        self.hvp_count = 0

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """``A @ vector`` for a vector of length ``dim``; counts one product."""
        if vector.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {tuple(vector.shape)}")
        self.hvp_count += 1
        return self._matvec(vector.to(self.dtype))

    def matmat(self, matrix: torch.Tensor, *, bar: ProgressBar | None = None) -> torch.Tensor:
        """``A @ matrix`` for a ``dim x k`` matrix; counts ``k`` products (and ticks ``bar``)."""
        if matrix.ndim != 2 or matrix.shape[0] != self.dim:
            raise ValueError(f"expected a matrix of shape ({self.dim}, k), got {tuple(matrix.shape)}")
        columns = []
        for column in matrix.T:
            columns.append(self.matvec(column))
            if bar is not None:
                bar.update(1)
        return torch.stack(columns, dim=1)

    @abstractmethod
    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """The product itself, without checks or counting."""


class DenseOperator(LinearOperator):
    """An explicit symmetric matrix as an operator (tests, tiny models)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix

    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.matrix @ vector
