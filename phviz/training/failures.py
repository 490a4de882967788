"""A failed run in words: when it stopped, with which gains, and what to try."""

from __future__ import annotations

import math

import torch

from ..config import TrainingConfig
from ..solvers import get_solver
from .records import TrainingError


def failure(
    config: TrainingConfig,
    reason: str,
    t: float,
    *,
    where: str,
    device: torch.device,
    err: Exception | None = None,
) -> TrainingError:
    """A ``TrainingError`` for a stop of kind ``reason`` ("nonfinite", "steps",
    "underflow" or "memory") at time ``t``; ``where``: the interval and epoch, in words."""
    cfg = config
    solver = get_solver(cfg.solver)
    gains = (
        f"damping={cfg.damping:g}, inertia={cfg.inertia:g}, "
        f"potential gain={cfg.potential_gain:g}, weight decay={cfg.weight_decay:g}, "
        f"Δt={cfg.switching_interval:g}, solver={cfg.solver}"
    )
    when = f"t = {t:.4g} ({where})"
    stiff = cfg.damping / cfg.inertia
    if reason == "memory":
        return TrainingError(
            f"Out of memory on {device} at {when} ({err}). The last good state is "
            "kept. Try a smaller batch or model, or the CPU.",
            t=t,
            kind="memory",
        )
    if reason == "nonfinite":
        if not solver.adaptive:
            hint = f"a smaller step_size (now {cfg.step_size:g})"
        else:
            hint = "a smaller switching interval, or tighter tolerances"
        return TrainingError(
            f"Training diverged at {when}: the state became NaN or infinite "
            f"with {gains}. The last finite state is kept. Try more damping, a smaller "
            f"potential gain or larger inertia, or {hint}.",
            t=t,
            kind="diverged",
        )
    if reason == "underflow":
        what = f"The solver {cfg.solver}'s step size shrank to nothing"
    elif solver.adaptive:
        what = (
            f"The solver {cfg.solver} could not keep rtol={cfg.rtol:g}, atol={cfg.atol:g} "
            f"within {cfg.max_steps} steps in one switching interval"
        )
    else:
        steps = math.ceil(cfg.switching_interval / cfg.step_size - 1e-9)
        what = (
            f"The step {cfg.step_size:g} needs {steps} steps per switching interval, "
            f"more than max_steps={cfg.max_steps}"
        )
    if stiff > 20 and not solver.exact_damping:
        remedy = (
            f"The damping is stiff (damping/inertia = {stiff:g}): try the solver "
            "conformal_leapfrog, which solves the damping exactly, or less damping."
        )
    else:
        remedy = (
            "Try looser tolerances, a larger step or max_steps, a smaller potential "
            "gain or more inertia (a less stiff system), or the solver conformal_leapfrog."
        )
    return TrainingError(
        f"{what} at {when}, with {gains}. The last good state is kept. {remedy}",
        t=t,
        kind="solver",
    )
