"""How flatness is measured and ranked: the settings and the metric names, without torch (the
options of ``flatkd rank-modalities`` are built from them, and its ``--help`` stays quick).
:mod:`.measure` and :mod:`.ranking` use and re-export them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

#: metric name -> whether it is invariant to function-preserving rescalings
METRICS: dict[str, bool] = {
    "adaptive_trace": True,
    "adaptive_top_eigenvalue": True,
    "trace": False,
    "top_eigenvalue": False,
    "trace_per_parameter": False,
    "adaptive_epsilon_sharpness": True,
    "adaptive_rho_sharpness": True,
    "epsilon_sharpness": False,
    "mean_loss_increase": False,
}
PRIMARY_METRIC = "adaptive_trace"


@dataclass(frozen=True)
class FlatnessSettings:
    """How flatness is measured (the ``landscape`` section of a run's config).

    Attributes:
        samples, batch_size, seed: each fixed subset: ``samples`` training clips drawn with
            ``seed``, evaluated with centred (deterministic) sampling in batches of ``batch_size``.
        subsets: disjoint subsets of ``samples`` clips each network is measured on; their spread
            is the interval of every metric (with one training run; see :mod:`.ranking`).
        backend: ``"flatkd"`` (shared spectrum) or ``"pyhessian"`` (its three calls).
        runs, steps, probes: the shared spectrum's SLQ runs, steps per run and extra trace probes.
        tol: relative target of the top eigenvalue's Lanczos residual bound (stopping rule; float32
            products cannot go below ~1.2e-6).
        surfaces: compute the line, the plane and epsilon-sharpness.
        line_steps, plane_steps, radius: surface grids (odd steps) over [-radius, radius].
        rho: radius of the mean loss increase, in filter-normalised units.
        epsilon, sharpness_steps: the box size of Keskar's and the adaptive epsilon-sharpness, and
            the ascent steps (one gradient each) of every sharpness.
        asam_rho: radius of the adaptive rho-sharpness (ASAM's 0.5 for CIFAR-10 by default).

    Cost per subset, in forward passes over it (F; on ``cpu-tiny`` at 112 px one HVP is ~10 F
    and one gradient ~5 F, see ``benchmarks/landscape.py``): twice (raw and adaptive)
    ``steps_1 + (runs - 1) * steps + probes`` HVPs (run 1 goes past ``steps`` until the top
    eigenvalue meets ``tol``), one gradient and one HVP for the convergence check,
    ``3 * sharpness_steps`` gradients, and on the first subset ``line_steps + plane_steps**2``
    forwards; F grows with ``samples``, everything but the surfaces with ``subsets``.
    """

    samples: int = 32
    batch_size: int = 32
    seed: int = 0
    subsets: int = 3
    backend: Literal["flatkd", "pyhessian"] = "flatkd"
    runs: int = 3
    steps: int = 16
    probes: int = 5
    tol: float = 1e-5
    surfaces: bool = True
    line_steps: int = 21
    plane_steps: int = 11
    radius: float = 1.0
    rho: float = 0.5
    epsilon: float = 1e-3
    sharpness_steps: int = 10
    asam_rho: float = 0.5

    @classmethod
    def quick(cls, **changes: Any) -> FlatnessSettings:
        """Cheaper settings for a first look (``flatkd rank-modalities --quick``, ``flatkd demo``),
        ~4x less work than the defaults; ``changes`` override single fields.

        What they keep (measured on the three ``cpu-tiny`` demo networks): the trace's
        standard error is about the defaults', because the trace needs probes, not SLQ runs
        (each run of ``steps`` HVPs yields one trace sample; a probe costs one HVP), so the
        budget goes to one Lanczos run (top eigenvalue, deflation basis and the density, without
        an error band) plus 12 probes; 16 clips instead of 32 moved the trace by less than its
        standard error on all three networks; Lanczos meets ``tol`` within 12-16 steps there.
        The surfaces are coarser (11-point line, 7 x 7 plane: 9 points within ``rho``) and
        epsilon-sharpness takes 5 ascent steps (a lower bound, like 10).
        """
        quick = {"samples": 16, "batch_size": 16, "runs": 1, "steps": 12, "probes": 12, "line_steps": 11,
                 "plane_steps": 7, "sharpness_steps": 5}  # fmt: skip
        return replace(cls(), **{**quick, **changes})
