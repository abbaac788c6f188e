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

from flatkd.lazy import lazy_exports

# the names by the submodule defining each, imported on first use (PEP 562), so that
# ``import flatkd.landscape.settings`` (the CLI's options) does not import torch
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "dense": ("dense_hessian",),
        "errors": ("LandscapeInputError",),
        "estimators": (
            "ScaledOperator", "adaptive_operator", "hutchinson_trace", "hutchpp_trace",
            "lanczos_eigenvalues", "power_eigenvalues", "shared_spectrum", "slq_density",
        ),
        "exits": ("SelectExit",),
        "hessian": ("Hessian",),
        "hvp": ("HessianOperator",),
        "linop": ("DenseOperator", "LinearOperator"),
        "measure": ("Measurement", "load_density", "measure_network"),
        "objective": ("Objective",),
        "ranking": (
            "FlatnessRecord", "MetricSummary", "Ranking", "convergence_problems", "flatness_table",
            "rank_modalities", "summary_table",
        ),
        "results": (
            "DensityCurve", "DensityEstimate", "EigenEstimate", "SpectrumEstimate", "TraceEstimate",
        ),
        "settings": ("FlatnessSettings",),
        "surfaces": (
            "EpsilonSharpness", "LossSurface", "Surface", "adaptive_rho_sharpness",
            "epsilon_sharpness", "load_surface", "mean_loss_increase", "save_surface",
        ),
    },
)
