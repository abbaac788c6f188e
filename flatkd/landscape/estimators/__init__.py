"""Matrix-free spectral estimators: functions of a :class:`~flatkd.landscape.linop.LinearOperator`
that see the operator only through its products and report what they cost.

* :mod:`.lanczos`: the Lanczos process with full reorthogonalisation (the engine of the
  eigenvalue and density estimators);
* :mod:`.lanczos_eigenvalues`: the largest eigenvalues from Ritz values, with error estimates;
* :mod:`.power`: the largest-magnitude eigenvalues by deflated power iteration (PyHessian's method);
* :mod:`.hutchinson`: the trace by Hutchinson's estimator;
* :mod:`.hutchpp`: the trace by Hutch++;
* :mod:`.slq`: the spectral density by stochastic Lanczos quadrature;
* :mod:`.spectrum`: top eigenvalues, trace and density from one shared set of products;
* :mod:`.deflation`: quadratic forms with a subspace projected out (shared by the trace estimators);
* :mod:`.probes`: seeded random probe vectors;
* :mod:`.adaptive`: the adaptive Hessian :math:`|\\theta| H |\\theta|` as an operator (invariant measures).

They run the same on the matrix-free Hessian (:class:`~flatkd.landscape.hvp.HessianOperator`) and
on an explicit matrix (:class:`~flatkd.landscape.linop.DenseOperator`), and return the result
types of :mod:`flatkd.landscape.results`.
"""

from flatkd.landscape.estimators.adaptive import ScaledOperator, adaptive_operator
from flatkd.landscape.estimators.hutchinson import hutchinson_trace
from flatkd.landscape.estimators.hutchpp import hutchpp_trace
from flatkd.landscape.estimators.lanczos import LanczosRun, lanczos
from flatkd.landscape.estimators.lanczos_eigenvalues import lanczos_eigenvalues
from flatkd.landscape.estimators.power import power_eigenvalues
from flatkd.landscape.estimators.slq import slq_density
from flatkd.landscape.estimators.spectrum import shared_spectrum

__all__ = [
    "LanczosRun",
    "ScaledOperator",
    "adaptive_operator",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "lanczos_eigenvalues",
    "power_eigenvalues",
    "shared_spectrum",
    "slq_density",
]
