"""Flatness of a trained network's minimum: Hessian spectrum, trace, density and loss surfaces.

The two entry points mirror PyHessian's directness::

    from flatkd.landscape import Hessian, Surface

    hessian = Hessian(model, criterion, [(x, y)])      # any iterable of (inputs, targets)
    hessian.eigenvalues(top_k=3)                       # Lanczos (or method="power")
    hessian.trace()                                    # Hutch++ (or method="hutchinson")
    hessian.density()                                  # stochastic Lanczos quadrature
    hessian.spectrum()                                 # all three from shared HVPs

    surface = Surface(model, criterion, [(x, y)])
    surface.line(), surface.plane(), surface.interpolation(other_checkpoint)

    hessian.spectrum(adaptive=True)                    # the same for |θ| H |θ| (invariant)

    measure_network(...) / rank_modalities(records)   # all metrics of a network; the ranking

Every estimate carries its uncertainty and the Hessian-vector products it cost. The estimators
work on any :class:`LinearOperator` (``hvp``: the matrix-free Hessian; ``DenseOperator``: an
explicit matrix). ``backend="pyhessian"`` / ``"loss-landscapes"`` run the reference libraries
instead (:mod:`flatkd.landscape.reference`). Multi-exit networks: wrap in :class:`SelectExit`.

Layout: this package holds the foundation (the objective over a fixed data subset, the
Hessian-vector-product operator, linear operators, result types) and the facades above;
:mod:`.estimators` holds the matrix-free estimators (Lanczos, power iteration, Hutchinson,
Hutch++, SLQ, the shared spectrum, deflation, probes); :mod:`.surfaces` the loss surfaces,
filter-normalised directions and sharpness summaries.
"""

from flatkd.landscape.dense import dense_hessian
from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.estimators import (
    ScaledOperator,
    adaptive_operator,
    hutchinson_trace,
    hutchpp_trace,
    lanczos_eigenvalues,
    power_eigenvalues,
    shared_spectrum,
    slq_density,
)
from flatkd.landscape.exits import SelectExit
from flatkd.landscape.hessian import Hessian
from flatkd.landscape.hvp import HessianOperator
from flatkd.landscape.linop import DenseOperator, LinearOperator
from flatkd.landscape.measure import FlatnessSettings, Measurement, load_density, measure_network
from flatkd.landscape.objective import Objective
from flatkd.landscape.ranking import (
    FlatnessRecord,
    MetricSummary,
    Ranking,
    convergence_problems,
    flatness_table,
    rank_modalities,
    summary_table,
)
from flatkd.landscape.results import DensityCurve, DensityEstimate, EigenEstimate, SpectrumEstimate, TraceEstimate
from flatkd.landscape.surfaces import (
    EpsilonSharpness,
    LossSurface,
    Surface,
    adaptive_rho_sharpness,
    epsilon_sharpness,
    load_surface,
    mean_loss_increase,
    save_surface,
)

__all__ = [
    "DenseOperator",
    "DensityCurve",
    "DensityEstimate",
    "EigenEstimate",
    "EpsilonSharpness",
    "FlatnessRecord",
    "FlatnessSettings",
    "Hessian",
    "HessianOperator",
    "LandscapeInputError",
    "LinearOperator",
    "LossSurface",
    "Measurement",
    "MetricSummary",
    "Objective",
    "Ranking",
    "ScaledOperator",
    "SelectExit",
    "SpectrumEstimate",
    "Surface",
    "TraceEstimate",
    "adaptive_operator",
    "adaptive_rho_sharpness",
    "convergence_problems",
    "dense_hessian",
    "epsilon_sharpness",
    "flatness_table",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos_eigenvalues",
    "load_density",
    "load_surface",
    "mean_loss_increase",
    "measure_network",
    "power_eigenvalues",
    "rank_modalities",
    "save_surface",
    "shared_spectrum",
    "slq_density",
    "summary_table",
]
