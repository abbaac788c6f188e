"""Quadratic forms of an operator with a subspace projected out: the variance-reduction step
shared by Hutch++ and the shared-spectrum trace.

Let :math:`Q` (``dim x k``) have orthonormal columns, :math:`P = QQ^\\top` and
:math:`M = Q^\\top A Q`. Then

.. math:: \\operatorname{tr}(A) = \\operatorname{tr}(M) + \\operatorname{tr}\\big((I-P)A(I-P)\\big),

and for a probe :math:`z` independent of :math:`Q` with :math:`E[zz^\\top] = I` the form

.. math:: z^\\top (I-P)A(I-P) z = z^\\top A z - 2\\,(Q^\\top z)^\\top (Q^\\top A z)
          + (Q^\\top z)^\\top M (Q^\\top z)

is an unbiased sample of the second term (Hutchinson on the deflated operator; Meyer, Musco,
Musco & Woodruff, "Hutch++: Optimal stochastic trace estimation", SOSA 2021, Alg. 1). The right
side needs only :math:`A z`, not :math:`A(I-P)z`, so a probe whose product is already known (the
first step of a Lanczos run) costs nothing more. The small products are formed in float64: the
deflated form can be orders of magnitude below :math:`z^\\top A z`.
"""

from __future__ import annotations

import torch


def deflated_quadratic_forms(
    probes: torch.Tensor, images: torch.Tensor, basis: torch.Tensor, projected: torch.Tensor
) -> torch.Tensor:
    """:math:`z_i^\\top (I-P) A (I-P) z_i` for each column :math:`z_i` of ``probes``.

    Args:
        probes: ``dim x p`` probe vectors :math:`Z`.
        images: ``dim x p``, :math:`A Z`.
        basis: ``dim x k`` orthonormal :math:`Q` (``k`` may be 0).
        projected: ``k x k``, :math:`M = Q^\\top A Q`.

    Returns:
        ``p`` float64 values.

    With :math:`Q = e_1`, only the part of :math:`z^\\top A z = 6` outside :math:`e_1` is left:

    >>> import torch
    >>> a = torch.diag(torch.tensor([5.0, 1.0], dtype=torch.float64))
    >>> z = torch.ones(2, 1, dtype=torch.float64)
    >>> q = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    >>> deflated_quadratic_forms(z, a @ z, q, q.T @ a @ q).tolist()
    [1.0]
    >>> deflated_quadratic_forms(z, a @ z, q[:, :0], torch.zeros(0, 0)).tolist()
    [6.0]
    """
    z, az, q = probes.double(), images.double(), basis.double()
    plain = (z * az).sum(0)
    coords = q.T @ z
    cross = (coords * (q.T @ az)).sum(0)
    inner = (coords * (projected.double() @ coords)).sum(0)
    return plain - 2 * cross + inner
