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

import importlib
from typing import Any

#: exported name -> the submodule defining it; imported on first use (PEP 562), so that
#: ``import flatkd.landscape.settings`` (the CLI's options) does not import torch
_EXPORTS: dict[str, str] = {
    "dense_hessian": "dense",
    "LandscapeInputError": "errors",
    "ScaledOperator": "estimators",
    "adaptive_operator": "estimators",
    "hutchinson_trace": "estimators",
    "hutchpp_trace": "estimators",
    "lanczos_eigenvalues": "estimators",
    "power_eigenvalues": "estimators",
    "shared_spectrum": "estimators",
    "slq_density": "estimators",
    "SelectExit": "exits",
    "Hessian": "hessian",
    "HessianOperator": "hvp",
    "DenseOperator": "linop",
    "LinearOperator": "linop",
    "FlatnessSettings": "settings",
    "Measurement": "measure",
    "load_density": "measure",
    "measure_network": "measure",
    "Objective": "objective",
    "FlatnessRecord": "ranking",
    "MetricSummary": "ranking",
    "Ranking": "ranking",
    "convergence_problems": "ranking",
    "flatness_table": "ranking",
    "rank_modalities": "ranking",
    "summary_table": "ranking",
    "DensityCurve": "results",
    "DensityEstimate": "results",
    "EigenEstimate": "results",
    "SpectrumEstimate": "results",
    "TraceEstimate": "results",
    "EpsilonSharpness": "surfaces",
    "LossSurface": "surfaces",
    "Surface": "surfaces",
    "adaptive_rho_sharpness": "surfaces",
    "epsilon_sharpness": "surfaces",
    "load_surface": "surfaces",
    "mean_loss_increase": "surfaces",
    "save_surface": "surfaces",
}

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


def __getattr__(name: str) -> Any:
    """The exported ``name`` (or the submodule ``name``), imported on first use."""
    if name not in _EXPORTS:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names and every export, imported or not."""
    return sorted({*globals(), *_EXPORTS})
