"""Runge–Kutta solvers on the ledger field [ξ; D; S]: torchdiffeq's methods, SciPy's
Radau through torchdiffeq, and phviz's own dopri5 loop on the CPU.

``ODESolver`` owns the loop they share: full batch is one solve across every interval
(the interval ends are output times); with mini-batches each interval is a solve of
its own on its batch, the jump of H at each switch booked from the potential.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torchdiffeq import odeint

from .base import End, Plan, Settings, Solver, SolverStop, finite
from .dopri5 import NonFiniteState, dopri5


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


class ODESolver(Solver):
    """A torchdiffeq method (``method``) on the ledger field, under phviz's checks."""

    method = ""

    def __init__(self, name: str, summary: str, *, adaptive: bool, method: str | None = None):
        self.name, self.summary, self.adaptive = name, summary, adaptive
        self.method = method or name

    def integrate(self, system, theta, p, plan: Plan, settings: Settings, sink) -> None:
        y = torch.cat([theta, p, theta.new_zeros(2)])
        n = system.dim
        with torch.no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if plan.batches is None and plan.n > 1:
                times = [plan.t0 + k * plan.interval for k in range(plan.n + 1)]
                try:
                    ys = self._checked(system, y, times, settings, plan)
                except SolverStop:
                    pass  # one interval at a time again, to report those before the failure
                else:
                    for k in range(1, plan.n + 1):
                        d, s = ys[k][-2:] - ys[k - 1][-2:]
                        sink(End(ys[k][:n], ys[k][n : 2 * n], d, s, 0.0, None))
                    return
            loss = plan.loss  # L at the state on the batch held, once known
            for k in range(plan.n):
                jump = 0.0
                theta = y[:n]
                if plan.switches(k):
                    before = system.potential(theta, loss)
                    plan.batches.next()
                    plan.batches.hold(system)
                    jump = system.potential(theta) - before
                # each interval is a solve of its own, its ledger from zero: the steps an
                # adaptive solver takes do not depend on where a run was paused
                y = torch.cat([theta, y[n : 2 * n], theta.new_zeros(2)])
                t = plan.t0 + k * plan.interval
                y = self._checked(system, y, [t, t + plan.interval], settings, plan)[-1]
                # the next switch's jump and this interval's record need L on this batch
                loss = system.loss(y[:n]) if plan.batches is not None else None
                sink(End(y[:n], y[n : 2 * n], y[-2], y[-1], jump, loss))

    def _checked(self, system, y, times, settings, plan) -> torch.Tensor:
        ys = self.solve(system, y, times, settings, plan.progress)
        if not finite(ys):
            raise SolverStop("nonfinite", times[0])
        return ys

    def solve(self, system, y0, times, settings: Settings, progress) -> torch.Tensor:
        """[ξ; D; S] at ``times`` (``times[0]`` is y0's), by torchdiffeq."""
        ts = torch.tensor(times, dtype=y0.dtype, device=y0.device)
        if self.adaptive:
            # torchdiffeq counts max_num_steps per output time, i.e. per interval; one
            # more than ours, so that phviz's check (which names the gains) stops first
            options = dict(max_num_steps=settings.max_steps + 1)
            kwargs = dict(rtol=settings.rtol, atol=settings.atol, options=options)
        else:
            interval = times[1] - times[0]
            if math.ceil(interval / settings.step_size - 1e-9) > settings.max_steps:
                raise SolverStop("steps", times[0])
            kwargs = dict(options=dict(step_size=settings.step_size))
        field = GuardedField(
            system.ledger_field,
            times,
            settings.max_steps,
            adaptive=self.adaptive,
            progress=progress,
        )
        return odeint(field, y0, ts, method=self.method, **kwargs)


class Radau(ODESolver):
    """SciPy's Radau IIA (implicit, order 5) through torchdiffeq's ``scipy_solver``."""

    def __init__(self):
        summary = "implicit, adaptive (SciPy's Radau IIA): stiff damping on small models"
        super().__init__("radau", summary, adaptive=True, method="scipy_solver")

    def solve(self, system, y0, times, settings: Settings, progress) -> torch.Tensor:
        ts = torch.tensor(times, dtype=y0.dtype, device=y0.device)
        field = GuardedField(
            system.ledger_field, times, settings.max_steps, adaptive=True, progress=progress
        )
        # SciPy's solver offers no step callback: phviz counts evaluations instead (its
        # Jacobian is estimated column by column, one evaluation a parameter)
        field.max_evaluations = settings.max_steps * (2 * system.dim + 10)
        kwargs = dict(rtol=settings.rtol, atol=settings.atol, options=dict(solver="Radau"))
        with warnings.catch_warnings():  # SciPy's note that Radau ignores `vectorized`
            warnings.simplefilter("ignore", UserWarning)
            return odeint(field, y0, ts, method=self.method, **kwargs)


class Dopri5(ODESolver):
    """Dormand–Prince 5(4): phviz's own loop on the system's NumPy field on the CPU
    (``dopri5.dopri5``, with an optional stabilized step control), torchdiffeq's
    elsewhere."""

    def __init__(self):
        summary = "adaptive Runge–Kutta 5(4), the default"
        super().__init__("dopri5", summary, adaptive=True)

    def solve(self, system, y0, times, settings: Settings, progress) -> torch.Tensor:
        if y0.device.type != "cpu" or not system.route.takes_arrays:
            return super().solve(system, y0, times, settings, progress)
        guard = GuardedField(None, times, settings.max_steps, adaptive=True, progress=None)

        def on_step(t0: float, dt: float) -> None:
            if progress is not None:
                progress(t0)
            guard.check_step(t0, dt)

        state = y0.detach().numpy().copy()
        try:
            ys = dopri5(
                system.array_ledger_field(),
                state,
                times,
                settings.rtol,
                settings.atol,
                on_step,
                stabilized=settings.stabilized,
            )
        except NonFiniteState as err:
            raise SolverStop("nonfinite", err.t) from None
        return torch.from_numpy(ys)
