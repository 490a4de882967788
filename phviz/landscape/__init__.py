"""Loss landscapes: planes through parameter space, projections, batched surfaces.

``naming`` turns friendly keys into flat indices of θ; ``planes`` builds planes
(PCA of a path, filter-normalised random directions, two chosen parameters) and
projects onto them; ``potentials`` evaluates a·L(θ) + (c/2)‖θ‖² for many θ at once
and over grids on a plane, a network of layers through ``graph`` (its chunks writing
into buffers they share, with the kernels of ``kernels``); ``phase`` gives one
coordinate's phase portrait; ``window`` keeps a plane and surface up to date with a
growing path for the live views; ``grid`` holds the extents and grids they share.

No GUI code: the views draw what these functions return (numpy arrays).
"""

from .grid import check_extent, check_resolution, extent_around, grid_points
from .naming import parameter_index, parameter_label
from .phase import phase_curve, phase_portrait, trainer_phase_portrait
from .planes import PLANE_KINDS, Plane, Projection, filter_normalise
from .potentials import PathProfile, Potential, loss_surface, trainer_surface
from .window import LandscapeWindow, WindowState

__all__ = [
    "PLANE_KINDS",
    "LandscapeWindow",
    "PathProfile",
    "Plane",
    "Potential",
    "Projection",
    "WindowState",
    "check_extent",
    "check_resolution",
    "extent_around",
    "filter_normalise",
    "grid_points",
    "loss_surface",
    "parameter_index",
    "parameter_label",
    "phase_curve",
    "phase_portrait",
    "trainer_phase_portrait",
    "trainer_surface",
]
