"""Ghosts: a standard optimizer's run from the same start, drawn beside a phviz run.

SGD with momentum takes exactly the steps of semi-implicit Euler with the run's step h,
so its ghost shows what the discrete method does with the same gains; Adam's shows a
method with no such equivalent.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from .config import TrainingConfig
from .optim import PortHamiltonianSGD

GHOST_METHODS = ("sgd-momentum", "adam")
GHOST_ADAM_LR = 0.01


@dataclass
class Ghost:
    """A standard optimizer's run drawn beside a phviz run: its potential
    a·L + (c/2)‖θ‖² (full training set) against t = step·h, and the settings it used
    (``settings``; ``note``: the same in words)."""

    method: str
    t: list[float]
    potential: list[float]
    settings: dict
    note: str


def ghost_settings(method: str, config: TrainingConfig) -> tuple[dict, str]:
    """The optimizer settings a ghost of ``method`` uses for ``config``'s gains.

    SGD with momentum takes exactly the steps of semi-implicit Euler with the solver's
    step h (``PortHamiltonianSGD.heavy_ball_equivalent``): lr = a·h²/m, momentum =
    1 − h·B/m, weight decay c/a. Adam has no such equivalent: it runs with
    ``GHOST_ADAM_LR`` and the same weight decay. Raises ``ValueError`` where the gains
    have no heavy-ball equivalent (momentum < 0: h·B/m > 1).
    """
    h, a, c = config.step_size, config.potential_gain, config.weight_decay
    if method == "sgd-momentum":
        settings = PortHamiltonianSGD.heavy_ball_equivalent(
            h, damping=config.damping, inertia=config.inertia, potential_gain=a, weight_decay=c
        )
        note = (
            f"SGD with momentum = semi-implicit Euler with step h = {h:g}: "
            f"lr = a·h²/m = {settings['lr']:.3g}, momentum = 1 − h·B/m = "
            f"{settings['momentum']:.3g}"
        )
        return settings, note
    if method == "adam":
        settings = {"lr": GHOST_ADAM_LR, "weight_decay": c / a}
        return settings, f"Adam: lr = {GHOST_ADAM_LR:g} (torch's betas), t = step·h, h = {h:g}"
    raise ValueError(f"Invalid method: {method!r} (choose from {', '.join(GHOST_METHODS)})")


def ghost_run(
    method: str,
    model: torch.nn.Module,
    theta0: torch.Tensor,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    config: TrainingConfig,
    *,
    horizon: float,
    max_points: int = 400,
    cancelled=None,
) -> Ghost:
    """``method`` (SGD with momentum or Adam) on the full batch from θ₀ (copied into a
    copy of ``model``) until t = step·h reaches ``horizon``; the potential at most
    ``max_points`` times. ``cancelled()``, if given, is asked now and then to stop early."""
    settings, note = ghost_settings(method, config)
    model = copy.deepcopy(model)
    params = list(model.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta0.detach().clone(), params)
    optimizer = (
        torch.optim.SGD(params, **settings)
        if method == "sgd-momentum"
        else torch.optim.Adam(params, **settings)
    )
    h, a, c = config.step_size, config.potential_gain, config.weight_decay
    steps = max(1, int(round(horizon / h)))
    every = max(1, steps // max_points)
    ghost = Ghost(method, [], [], settings, note)

    def record(step: int) -> bool:
        with torch.no_grad():
            theta = torch.nn.utils.parameters_to_vector(params)
            value = a * float(loss_fn(model(inputs), targets)) + 0.5 * c * float(theta @ theta)
        ghost.t.append(step * h)
        ghost.potential.append(value)
        return math.isfinite(value)

    record(0)
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
        if (step % every == 0 or step == steps) and not record(step):
            break  # diverged: the curve ends here
        if cancelled is not None and step % 64 == 0 and cancelled():
            break
    return ghost
