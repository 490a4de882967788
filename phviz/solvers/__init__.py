"""The solver table: each solver the config offers, by name, as one object that owns
its loop, its step control and its checks (``Solver``).

The Trainer, the gain map's ensembles and the explorer all integrate through it;
``solver.ensemble`` says which can integrate many members at once.
"""

from __future__ import annotations

from .base import End, Plan, Settings, Solver, SolverStop
from .exponential import AdaptiveExponentialRK, ExponentialRK
from .rk import Dopri5, ODESolver, Radau
from .splitting import ConformalLeapfrog, ForceSolver, conformal_symplectic_step

SOLVERS: dict[str, Solver] = {
    solver.name: solver
    for solver in (
        Dopri5(),
        ODESolver("bosh3", "adaptive Runge–Kutta 3(2) (Bogacki–Shampine)", adaptive=True),
        ODESolver("adaptive_heun", "adaptive Runge–Kutta 2(1) (Heun)", adaptive=True),
        ODESolver("rk4", "fixed step, classical Runge–Kutta 4 (3/8 rule)", adaptive=False),
        ODESolver("midpoint", "fixed step, explicit midpoint (order 2)", adaptive=False),
        ODESolver("euler", "fixed step, explicit Euler (order 1)", adaptive=False),
        ConformalLeapfrog(),
        ExponentialRK(),
        AdaptiveExponentialRK(),
        Radau(),
    )
}


def get_solver(name: str) -> Solver:
    """The solver called ``name``; a ``ValueError`` listing the valid names otherwise."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Invalid solver: {name!r} (choose one of {', '.join(SOLVERS)})") from None


__all__ = [
    "SOLVERS",
    "AdaptiveExponentialRK",
    "ConformalLeapfrog",
    "Dopri5",
    "End",
    "ExponentialRK",
    "ForceSolver",
    "ODESolver",
    "Plan",
    "Radau",
    "Settings",
    "Solver",
    "SolverStop",
    "conformal_symplectic_step",
    "get_solver",
]
