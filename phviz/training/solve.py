"""Integrating switching intervals, with phviz's own checks, and wording the failures."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torchdiffeq import odeint

from ..config import ADAPTIVE_SOLVERS, IMPLICIT_SOLVERS, SPLITTING_SOLVERS, TrainingConfig
from ..dynamics import PortHamiltonianSystem, conformal_symplectic_step
from .dopri5 import NonFiniteState, dopri5
from .records import TrainingError


class SolverStop(Exception):
    """Raised by phviz's own checks inside a solve (never an ``assert``)."""

    def __init__(self, reason: str, t: float):
        super().__init__(reason)
        self.reason, self.t = reason, t  # "steps", "underflow" or "nonfinite"


class GuardedField:
    """A vector field with phviz's checks at every solver step (torchdiffeq's callback).

    Counts steps (accepted and rejected) per switching interval, and stops on a step
    that underflows or a state that is no longer finite: explicit checks that also hold
    under ``python -O``, where torchdiffeq's own asserts vanish.
    """

    def __init__(self, field, times: list[float], max_steps: int, *, adaptive: bool, progress):
        self.field, self.ends, self.max_steps = field, times[1:], max_steps
        self.adaptive, self.progress = adaptive, progress
        self.interval = self.steps = 0
        self.max_evaluations = None  # set for solvers without a step callback
        self.evaluations = 0

    def __call__(self, t, y):
        if self.progress is not None:
            self.progress(float(t))
        if self.max_evaluations is not None:
            self.evaluations += 1
            if self.evaluations > self.max_evaluations * len(self.ends):
                raise SolverStop("steps", float(t))
            if not bool(torch.isfinite(y).all()):
                raise SolverStop("nonfinite", float(t))
        return self.field(t, y)

    def callback_step(self, t0, y0, dt):
        self.check_step(float(t0), float(dt), bool(torch.isfinite(y0).all()))

    def check_step(self, t0: float, dt: float, finite: bool = True) -> None:
        """Count a step of size ``dt`` from ``t0`` (``finite``: whether its start state is)."""
        # A fixed grid laid over several intervals puts k·h a rounding error before k·Δt:
        # a step that starts there belongs to the next interval.
        while self.interval < len(self.ends) - 1 and t0 >= _before(self.ends[self.interval]):
            self.interval, self.steps = self.interval + 1, 0
        if not (math.isfinite(dt) and finite):
            raise SolverStop("nonfinite", t0)
        if not t0 + dt > t0:
            if self.adaptive:
                raise SolverStop("underflow", t0)
            return  # a fixed grid may end on a step of length zero: no step at all
        self.steps += 1
        if self.steps > self.max_steps:
            raise SolverStop("steps", t0)


def _before(t: float) -> float:
    """``t`` less a few rounding errors of a grid's k·h."""
    return t - 1e-9 * max(1.0, abs(t))


def integrate_odeint(
    system: PortHamiltonianSystem,
    config: TrainingConfig,
    y0,
    t0: float,
    n: int,
    progress,
    *,
    own_dopri5: bool = True,
) -> torch.Tensor:
    """[ξ; D; S] at the n interval ends, by torchdiffeq, under phviz's own checks.

    dopri5 on the CPU runs phviz's own loop of the same method (``dopri5.dopri5``) on
    the system's NumPy field, unless ``own_dopri5`` is false.
    """
    cfg = config
    dt = cfg.switching_interval
    times = [t0 + k * dt for k in range(n + 1)]
    if own_dopri5 and cfg.solver == "dopri5" and y0.device.type == "cpu":
        return integrate_dopri5(system, cfg, y0, times, progress)
    ts = torch.tensor(times, dtype=y0.dtype, device=y0.device)
    method = cfg.solver
    if cfg.solver in IMPLICIT_SOLVERS:
        # SciPy's solver offers no step callback: phviz counts evaluations instead
        method = "scipy_solver"
        kwargs = dict(rtol=cfg.rtol, atol=cfg.atol, options=dict(solver="Radau"))
    elif cfg.solver in ADAPTIVE_SOLVERS:
        # torchdiffeq counts max_num_steps per output time, i.e. per interval; one
        # more than ours, so that phviz's check (which names the gains) stops first
        options = dict(max_num_steps=cfg.max_steps + 1)
        kwargs = dict(rtol=cfg.rtol, atol=cfg.atol, options=options)
    else:
        if math.ceil(dt / cfg.step_size - 1e-9) > cfg.max_steps:
            raise SolverStop("steps", t0)
        kwargs = dict(options=dict(step_size=cfg.step_size))
    adaptive = cfg.solver in ADAPTIVE_SOLVERS
    field = GuardedField(
        system.ledger_field, times, cfg.max_steps, adaptive=adaptive, progress=progress
    )
    if method == "scipy_solver":
        field.max_evaluations = cfg.max_steps * (2 * system.dim + 10)
        with warnings.catch_warnings():  # SciPy's note that Radau ignores `vectorized`
            warnings.simplefilter("ignore", UserWarning)
            return odeint(field, y0, ts, method=method, **kwargs)
    return odeint(field, y0, ts, method=method, **kwargs)


def integrate_dopri5(
    system: PortHamiltonianSystem, config: TrainingConfig, y0, times: list[float], progress
) -> torch.Tensor:
    """[ξ; D; S] at ``times`` by phviz's dopri5 on the system's NumPy ledger field."""
    guard = GuardedField(None, times, config.max_steps, adaptive=True, progress=None)

    def on_step(t0: float, dt: float) -> None:
        if progress is not None:
            progress(t0)
        guard.check_step(t0, dt)

    field = system.array_ledger_field()
    state = y0.detach().numpy().copy()
    try:  # a diverging state is caught by the solver's checks: NumPy need not warn of it
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ys = dopri5(
                field,
                state,
                times,
                config.rtol,
                config.atol,
                on_step,
                stabilized=config.step_control == "stabilized",
            )
    except NonFiniteState as err:
        raise SolverStop("nonfinite", err.t) from None
    return torch.from_numpy(ys)


def integrate_splitting(
    system: PortHamiltonianSystem,
    config: TrainingConfig,
    y0,
    t0: float,
    n: int,
    progress,
    losses: list,
    on_switch: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """[ξ; D; S] at the n interval ends by the conformal-symplectic splitting.

    round(Δt/h) steps of ``conformal_symplectic_step`` an interval: the damping is
    solved exactly (its dissipated energy comes from the step, so that part of the
    ledger is exact), the rest by leapfrog, whose energy error is the residual.
    One gradient a step: each step's last force is the next one's first, and the
    losses those gradients come with fill ``losses`` (the records' energies). After a
    batch switch, ``on_switch`` is told H at y0 on the new batch, from the first
    gradient, before any step is taken.
    """
    cfg = config
    dt = cfg.switching_interval
    steps = max(1, round(dt / cfg.step_size))
    if steps > cfg.max_steps:
        raise SolverStop("steps", t0)
    h = dt / steps
    theta, p = system.split(y0[:-2])
    dissipated = y0.new_zeros(())
    supplied = y0.new_zeros(())
    cache: list = [None, None, None]  # the last θ, its loss and force

    def conservative_force(q):
        if cache[0] is not q:
            system.nfe += 1
            loss, grad = system.loss_and_gradient(q)
            cache[0], cache[1], cache[2] = q, loss, grad.neg_()
        return cache[2]

    if on_switch is not None:
        conservative_force(theta)
        on_switch(float(system.energy(y0[:-2], cache[1]).total))
    out = [y0]
    for k in range(n):
        for j in range(steps):
            t = t0 + k * dt + j * h
            u = system.port_force(t, theta, p)
            force = conservative_force
            if u is not None:

                def force(q, u=u):
                    return conservative_force(q) + u

            before = theta
            theta, p, drained = conformal_symplectic_step(
                theta, p, force, h, system.damping, system.inertia
            )
            dissipated = dissipated + drained
            if u is not None:  # work of a force held over the step
                supplied = supplied + (u * (theta - before)).sum()
        if not (bool(torch.isfinite(theta).all()) and bool(torch.isfinite(p).all())):
            raise SolverStop("nonfinite", t0 + k * dt)
        out.append(torch.cat([theta, p, dissipated.reshape(1), supplied.reshape(1)]))
        if cache[0] is theta:
            losses[k + 1] = cache[1]
        if progress is not None:
            progress(t0 + (k + 1) * dt)
    return torch.stack(out)


def failure(
    config: TrainingConfig,
    reason: str,
    t: float,
    *,
    where: str,
    device: torch.device,
    err: Exception | None = None,
) -> TrainingError:
    """A ``TrainingError`` naming the gains, the time (``where``: the interval and epoch,
    in words) and what to try."""
    cfg = config
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
        if cfg.solver in SPLITTING_SOLVERS:
            hint = f"a smaller step_size (now {cfg.step_size:g})"
        else:
            hint = "a smaller step or switching interval, or the adaptive solver dopri5"
        return TrainingError(
            f"Training diverged at {when}: the state became NaN or infinite "
            f"with {gains}. The last finite state is kept. Try more damping, a smaller "
            f"potential gain or larger inertia, or {hint}.",
            t=t,
            kind="diverged",
        )
    if reason == "underflow":
        what = f"The solver {cfg.solver}'s step size shrank to nothing"
    elif cfg.solver in ADAPTIVE_SOLVERS:
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
    if stiff > 20 and cfg.solver not in SPLITTING_SOLVERS:
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
