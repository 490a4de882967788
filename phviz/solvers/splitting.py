"""Fixed-step solvers built on the force −∂V/∂θ, and the conformal leapfrog.

``ForceSolver`` owns the loop every such solver shares, for one run and for an
ensemble of members alike: intervals, batch switches and their jumps of H, the
ledger's dissipated and supplied energy, and the checks. A subclass gives one step.

The conformal leapfrog solves the damping flow ṗ = −BM⁻¹p exactly over h/2 on both
sides of a leapfrog (velocity Verlet) step of the conservative part: second order,
conformal symplectic, and stable for any B (its discrete momentum is e^{−hB/m}).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ..dynamics import damping_decay
from .base import End, Plan, Settings, Solver, SolverStop


def conformal_symplectic_step(theta, p, force, h: float, damping, inertia):
    """One step of the damped system by splitting: (θ, p, energy dissipated).

    Exact damping over h/2, a leapfrog step of θ̇ = M⁻¹p, ṗ = force(θ) with
    force(θ) = −(a∇L(θ) + cθ) (+ u), exact damping over h/2. The energy the two
    damping half-steps drain, ½(pᵀM⁻¹p before − after), is returned, so the ledger's
    dissipated term is exact and its residual is the leapfrog's error. A pure function
    of tensors or arrays (``force`` a function of θ alone), so it can be
    ``torch.func.vmap``-ed; with a leading axis of members the sums are per member.
    """
    decay = damping_decay(damping, inertia, 0.5 * h)

    def kinetic(q):
        return 0.5 * (q * q / inertia).sum(-1)

    damped = decay * p
    dissipated = kinetic(p) - kinetic(damped)
    p = damped + 0.5 * h * force(theta)
    theta = theta + h * p / inertia
    p = p + 0.5 * h * force(theta)
    damped = decay * p
    dissipated = dissipated + kinetic(p) - kinetic(damped)
    return theta, damped, dissipated


class Force:
    """force(θ) = −∂V/∂θ of a system on its batch held, the last evaluation kept: a
    step's closing force is the next one's opening force, and the loss it came with
    serves the interval's record and the next switch's jump."""

    def __init__(self, system, arrays: bool):
        self.evaluate = system.array_force if arrays else system.force
        if getattr(system, "members", None) is not None:
            self.measure = system.losses
        else:
            self.measure = system.array_loss if arrays else system.loss
        self.theta = self.loss = self.value = None

    def __call__(self, theta):
        if self.theta is not theta:
            self.loss, self.value = self.evaluate(theta)
            self.theta = theta
        return self.value

    def loss_at(self, theta):
        """L(θ), with the force at θ (which the next step needs)."""
        self(theta)
        return self.loss

    def loss_only(self, theta):
        """L(θ), by a forward pass alone unless the force at θ is known already."""
        return self.loss if self.theta is theta else self.measure(theta)

    def forget(self) -> None:
        """The batch changed: the same θ has another force now."""
        self.theta = None


class Interval(NamedTuple):
    """Interval ``k`` of ``plan``, as ``ForceSolver.advance`` integrates it: ``steps``
    steps of length ``h`` (``grid``'s), under ``settings``."""

    plan: Plan
    settings: Settings
    k: int
    steps: int
    h: float


class ForceSolver(Solver):
    """A fixed step h ≈ ``step_size`` (round(Δt/h) steps an interval) of ``step``."""

    ensemble = True
    exact_damping = True

    def prepare(self, gains: dict, h: float):
        """What ``step`` needs of the gains for steps of length h (computed once)."""
        return gains

    def step(self, theta, p, force, h: float, prepared, u):
        """One step: (θ, p, dissipated energy) from (θ, p), ``force`` and the port u
        (None, or held over the step)."""
        raise NotImplementedError

    def grid(self, plan: Plan, settings: Settings) -> tuple[int, float]:
        """Steps per switching interval and their length h, fixed for the solve (a
        ``SolverStop`` if they are more than ``max_steps``)."""
        return settings.fixed_steps(plan.interval, plan.t0)

    def advance(self, system, theta, p, force, prepared, interval: Interval):
        """One switching interval from (θ, p) on the batch held: (θ, p, dissipated,
        supplied), the last two summed over its steps. A solver that chooses its own
        steps overrides this (and ``grid``)."""
        plan, k, steps, h = interval.plan, interval.k, interval.steps, interval.h
        dissipated = supplied = 0.0
        for j in range(steps):
            t = plan.t0 + (k * steps + j) * h
            u = system.port_force(t, theta, p)
            previous = theta
            theta, p, drained = self.step(theta, p, force, h, prepared, u)
            dissipated = dissipated + drained
            if u is not None:  # the work of a force held over the step
                supplied = supplied + (u * (theta - previous)).sum(-1)
        return theta, p, dissipated, supplied

    def integrate(self, system, theta, p, plan: Plan, settings: Settings, sink) -> None:
        steps, h = self.grid(plan, settings)
        members = getattr(system, "members", None)
        arrays = system.takes_arrays
        if arrays and isinstance(theta, torch.Tensor):
            theta, p = theta.detach().numpy().copy(), p.detach().numpy().copy()
        force = Force(system, arrays)
        prepared = self.prepare(system.gains(arrays), h)
        # a diverging state is caught below, by its energy: NumPy need not warn of it
        with torch.no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss = plan.loss  # L at θ on the batch held, once known
            for k in range(plan.n):
                jump = 0.0
                if plan.switches(k):
                    before = system.potential(
                        theta, force.loss_only(theta) if loss is None else loss
                    )
                    plan.batches.next()
                    plan.batches.hold(system)
                    force.forget()
                    jump = system.potential(theta, force.loss_at(theta)) - before
                start = theta, p
                theta, p, dissipated, supplied = self.advance(
                    system, theta, p, force, prepared, Interval(plan, settings, k, steps, h)
                )
                if members is not None:
                    theta, p = members.freeze_diverged(theta, p, start, force)
                elif not math.isfinite(float(dissipated + jump)):
                    # a state that is not finite makes the drained energy or the jump so
                    raise SolverStop("nonfinite", round(plan.t0 + k * plan.interval, 12))
                # a switch comes next, or the caller's next call: L alone, no gradient
                last = k == plan.n - 1 or plan.switches(k + 1)
                loss = force.loss_only(theta) if last else force.loss_at(theta)
                sink(End(theta, p, dissipated, supplied, jump, loss))
                if plan.progress is not None:
                    plan.progress(plan.end(k))


class ConformalLeapfrog(ForceSolver):
    name = "conformal_leapfrog"
    summary = "fixed step; damping solved exactly, leapfrog for the rest (any damping)"

    def prepare(self, gains: dict, h: float):
        return gains["damping"], gains["inertia"]

    def step(self, theta, p, force, h, prepared, u):
        damping, inertia = prepared
        pushed = force if u is None else (lambda q: force(q) + u)
        return conformal_symplectic_step(theta, p, pushed, h, damping, inertia)
