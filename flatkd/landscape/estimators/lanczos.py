"""The Lanczos process with full reorthogonalisation: the engine of the eigenvalue and density
estimators.

From a start vector :math:`q_1 = v/\\|v\\|`, Lanczos (Lanczos 1950; Golub & Van Loan, *Matrix
Computations*, 4th ed., §10.1) builds an orthonormal basis :math:`Q_m = [q_1,\\dots,q_m]` of the
Krylov space :math:`\\mathcal{K}_m(A, v)` and the tridiagonal
:math:`T_m = Q_m^\\top A Q_m` (diagonal :math:`\\alpha_j`, off-diagonal :math:`\\beta_j`) from the
three-term recurrence

.. math:: \\beta_j q_{j+1} = A q_j - \\alpha_j q_j - \\beta_{j-1} q_{j-1},
          \\qquad \\alpha_j = q_j^\\top A q_j,

one operator product per step. In floating point the :math:`q_j` lose orthogonality as Ritz values
converge, which creates spurious copies of eigenvalues; here every new vector is orthogonalised
against all previous ones, twice ("twice is enough": Giraud, Langou & Rozloznik 2005), which keeps
:math:`Q_m` orthonormal to working precision for :math:`O(nm)` extra flops per step, negligible
beside a Hessian-vector product. Then :math:`A Q_m = Q_m T_m + \\beta_m q_{m+1} e_m^\\top` with
:math:`Q_m^\\top q_{m+1} = 0`, which the trace estimator in :mod:`.spectrum` relies on.

If :math:`\\beta_j` vanishes (to working precision), :math:`\\mathcal{K}_j` is invariant, the Ritz
values are exact eigenvalues and the run stops early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from flatkd.landscape.linop import LinearOperator
from flatkd.progress import ProgressFactory, no_progress

#: ``stop(alphas, betas)`` decides after each step whether the run has what it needs.
StopRule = Callable[[list[float], list[float]], bool]


@dataclass(frozen=True)
class LanczosRun:
    """The result of ``m`` Lanczos steps.

    Attributes:
        vectors: :math:`Q_m^\\top`, ``m x dim``: the orthonormal Lanczos vectors as rows (row 0 is
            the unit start vector); only row 0 if the run was made with ``keep_basis=False``.
        alphas: :math:`\\alpha_1..\\alpha_m` (float64).
        betas: :math:`\\beta_1..\\beta_m` (float64); the first ``m-1`` are :math:`T_m`'s
            off-diagonal, the last couples :math:`Q_m` to the next Lanczos vector.
        first_image: :math:`A q_1`, the first product (kept for trace estimation).
    """

    vectors: torch.Tensor
    alphas: torch.Tensor
    betas: torch.Tensor
    first_image: torch.Tensor

    @property
    def steps(self) -> int:
        return len(self.alphas)

    @property
    def basis(self) -> torch.Tensor:
        """:math:`Q_m`, ``dim x m``."""
        return self.vectors.T

    def tridiagonal(self) -> torch.Tensor:
        """:math:`T_m = Q_m^\\top A Q_m` (float64)."""
        off = self.betas[:-1]
        return torch.diag(self.alphas) + torch.diag(off, 1) + torch.diag(off, -1)

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (ascending) and eigenvectors (columns) of :math:`T_m`, float64."""
        return torch.linalg.eigh(self.tridiagonal())


def lanczos(
    op: LinearOperator,
    start: torch.Tensor,
    max_steps: int,
    *,
    stop: StopRule | None = None,
    keep_basis: bool = True,
    progress: ProgressFactory = no_progress,
    desc: str = "lanczos",
) -> LanczosRun:
    """Run at most ``max_steps`` (and at most ``op.dim``) Lanczos steps from ``start``.

    After each step ``stop(alphas, betas)`` may end the run; it also ends when
    :math:`\\beta_j \\le 10\\,\\epsilon \\max(|\\alpha|, |\\beta|)` (an invariant subspace).
    The basis (``steps x dim`` numbers, the memory that matters for large models) grows as the run
    does; with ``keep_basis=False`` only its first vector is returned.

    On a 3 x 3 diagonal matrix the Krylov space of a vector with no zero component is the whole
    space: the run stops after 3 steps (:math:`\\beta_3` vanishes) and the Ritz values are the
    eigenvalues.

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> op = DenseOperator(torch.diag(torch.tensor([4.0, 3.0, 1.0], dtype=torch.float64)))
    >>> run = lanczos(op, torch.ones(3, dtype=torch.float64), max_steps=10)
    >>> run.steps, op.hvp_count
    (3, 3)
    >>> [round(value, 6) for value in run.ritz()[0].tolist()]
    [1.0, 3.0, 4.0]
    >>> torch.allclose(run.basis.T @ op.matrix @ run.basis, run.tridiagonal())
    True
    """
    steps = min(max_steps, op.dim)
    if steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    vectors = torch.empty(min(steps, 16), op.dim, dtype=op.dtype, device=op.device)
    q = start.to(op.dtype) / torch.linalg.vector_norm(start.to(op.dtype))
    alphas: list[float] = []
    betas: list[float] = []
    first_image = torch.empty(0)
    eps = torch.finfo(op.dtype).eps
    with progress(total=steps, desc=desc) as bar:
        for j in range(steps):
            if j == len(vectors):
                vectors = torch.cat([vectors, torch.empty_like(vectors[: min(j, steps - j)])])
            vectors[j] = q
            w = op.matvec(q)
            if j == 0:
                first_image = w.clone()
            alpha = torch.dot(q, w)
            w = w - alpha * q
            if j > 0:
                w = w - betas[-1] * vectors[j - 1]
            done = vectors[: j + 1]
            for _ in range(2):
                w = w - done.T @ (done @ w)
            beta = torch.linalg.vector_norm(w)
            alphas.append(float(alpha))
            betas.append(float(beta))
            bar.update(1)
            scale = max(max(abs(a) for a in alphas), max(betas))
            if betas[-1] <= 10 * eps * scale or (stop is not None and stop(alphas, betas)):
                break
            q = w / beta
    m = len(alphas) if keep_basis else 1
    return LanczosRun(
        vectors[:m].clone() if m < len(vectors) else vectors,
        torch.tensor(alphas, dtype=torch.float64),
        torch.tensor(betas, dtype=torch.float64),
        first_image,
    )
