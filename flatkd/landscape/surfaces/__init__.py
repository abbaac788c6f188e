"""Loss surfaces around trained weights and the sharpness numbers read off them.

* :mod:`.surface`: :class:`Surface`, random lines and planes along filter-normalised directions
  and the interpolation between two checkpoints;
* :mod:`.directions`: filter-normalised random directions (Li et al. 2018);
* :mod:`.sharpness`: the mean loss increase within a radius, Keskar et al.'s epsilon-sharpness and
  the adaptive (ASAM) epsilon- and rho-sharpness;
* :mod:`.loss_surface`: :class:`LossSurface`, the evaluated grid, and its safetensors file format.
"""

from flatkd.landscape.surfaces.loss_surface import LossSurface, load_surface, save_surface
from flatkd.landscape.surfaces.sharpness import (
    EpsilonSharpness,
    adaptive_rho_sharpness,
    epsilon_sharpness,
    mean_loss_increase,
)
from flatkd.landscape.surfaces.surface import Surface

__all__ = [
    "EpsilonSharpness",
    "LossSurface",
    "Surface",
    "adaptive_rho_sharpness",
    "epsilon_sharpness",
    "load_surface",
    "mean_loss_increase",
    "save_surface",
]
