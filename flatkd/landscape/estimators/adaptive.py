"""Adaptive (elementwise-normalised) curvature: the Hessian seen in relative weight coordinates.

Raw curvature is not invariant to reparametrisations that leave the network's function unchanged
(Dinh, Pascanu, Bengio & Bengio, "Sharp minima can generalize for deep nets", ICML 2017): scaling a
convolution that feeds a BatchNorm by :math:`c` leaves every output the same but divides that
block of the Hessian by :math:`c^2`. Measuring perturbations relative to each weight,
:math:`\\delta = |\\theta| \\odot u`, removes the scale: with :math:`S = \\operatorname{diag}(|\\theta|)`
the curvature in :math:`u` is

.. math:: H_{\\mathrm{ad}} = S\\, H\\, S, \\qquad
          \\operatorname{tr} H_{\\mathrm{ad}} = \\sum_i \\theta_i^2 H_{ii}, \\qquad
          \\lambda_{\\max}(H_{\\mathrm{ad}}) = \\max_{\\|u\\|_2 = 1} u^\\top S H S u,

and under :math:`\\theta_B \\to c\\,\\theta_B` for a scale-invariant block :math:`B`,
:math:`S_B \\to c\\,S_B` and :math:`H_{BB} \\to H_{BB} / c^2`, :math:`H_{B\\bar B} \\to H_{B\\bar B} / c`,
so :math:`S H S` is unchanged. This is the elementwise adaptive sharpness of Kwon, Kim, Park &
Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural
Networks", ICML 2021 (normalisation operator :math:`T_\\theta = |\\theta|`, with their
:math:`\\eta = 0`), in its second-order (average-case) form as in Andriushchenko, Croce, Müller,
Hein & Flammarion, "A modern look at the relationship between sharpness and generalization", ICML
2023. Every estimator of :mod:`flatkd.landscape.estimators` runs unchanged on
:class:`ScaledOperator`; each product costs one HVP and two elementwise multiplications.
"""

from __future__ import annotations

import torch

from flatkd.landscape.linop import LinearOperator


class ScaledOperator(LinearOperator):
    """:math:`v \\mapsto s \\odot A(s \\odot v)`, i.e. :math:`S A S` with :math:`S = \\operatorname{diag}(s)`.

    With ``scale = |θ|`` and ``A`` the Hessian this is :math:`H_{\\mathrm{ad}}` (module docstring).
    Products are counted here and on ``operator``:

    >>> import torch
    >>> from flatkd.landscape.linop import DenseOperator
    >>> op = ScaledOperator(DenseOperator(torch.tensor([[2.0, 1.0], [1.0, 3.0]])), torch.tensor([1.0, -2.0]).abs())
    >>> op.matvec(torch.tensor([1.0, 0.0])).tolist(), op.hvp_count
    ([2.0, 2.0], 1)
    """

    def __init__(self, operator: LinearOperator, scale: torch.Tensor) -> None:
        if scale.shape != (operator.dim,):
            raise ValueError(f"scale must have shape ({operator.dim},), got {tuple(scale.shape)}")
        super().__init__(operator.dim, operator.dtype, operator.device)
        self.operator = operator
        self.scale = scale.to(dtype=operator.dtype, device=operator.device)

    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.scale * self.operator.matvec(self.scale * vector)


def adaptive_operator(hessian: LinearOperator, theta: torch.Tensor) -> ScaledOperator:
    """:math:`|\\theta| H |\\theta|` (module docstring) for the Hessian ``hessian`` at ``theta``."""
    return ScaledOperator(hessian, theta.detach().abs())
