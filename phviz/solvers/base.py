"""What every solver in the table shares: its settings, what it reports at the end of
each switching interval, and how it stops."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


class SolverStop(Exception):
    """A solve stopped by phviz's own checks (never an ``assert``); the intervals before
    it have been reported. ``reason``: "steps", "underflow" or "nonfinite"."""

    def __init__(self, reason: str, t: float):
        super().__init__(reason)
        self.reason, self.t = reason, t


@dataclass(frozen=True)
class Settings:
    """A solver's numerical settings (a ``TrainingConfig``'s, read once per solve)."""

    step_size: float = 0.01
    rtol: float = 1e-4
    atol: float = 1e-6
    max_steps: int = 20_000
    stabilized: bool = False  # dopri5: Hairer and Wanner's stabilized step-size control

    @classmethod
    def of(cls, config) -> Settings:
        return cls(
            step_size=config.step_size,
            rtol=config.rtol,
            atol=config.atol,
            max_steps=config.max_steps,
            stabilized=config.step_control == "stabilized",
        )

    def fixed_steps(self, interval: float, t: float) -> tuple[int, float]:
        """Steps per switching interval and their length h ≈ ``step_size``; a
        ``SolverStop`` at ``t`` if that is more than ``max_steps``."""
        steps = max(1, round(interval / self.step_size))
        if steps > self.max_steps:
            raise SolverStop("steps", t)
        return steps, interval / steps


@dataclass
class Plan:
    """What to integrate: ``n`` switching intervals of length ``interval`` from ``t0``.

    With ``batches`` (a ``BatchSchedule``) the system moves on to the next batch before
    every interval but the first (and before the first too when ``switch_first``);
    without, it holds its batch throughout (full batch: one autonomous solve). ``loss``
    spares an evaluation at the first switch.
    """

    t0: float
    interval: float
    n: int
    batches: object | None = None
    switch_first: bool = False
    progress: Callable[[float], None] | None = None
    loss: object = None  # L at the start on the batch held then, when the caller knows it

    def switches(self, k: int) -> bool:
        """Whether interval ``k`` (from 0) starts on a new batch."""
        return self.batches is not None and (k > 0 or self.switch_first)

    def end(self, k: int) -> float:
        """The end time of interval ``k`` (from 0), without 0.30000000000000004."""
        return round(self.t0 + (k + 1) * self.interval, 12)


class End(NamedTuple):
    """The state at the end of one switching interval, as a solver reports it.

    ``dissipated`` and ``supplied`` are ∫vᵀBv dt and ∫vᵀu dt over this interval,
    ``jump`` the change of H at its batch switch (0 without one), ``loss`` L on the
    batch held at its end where the solver has it (else None).
    """

    theta: object
    p: object
    dissipated: object
    supplied: object
    jump: object
    loss: object


Sink = Callable[[End], None]


class Solver:
    """One entry of the solver table: owns its loop, its step control and its checks.

    ``integrate(system, theta, p, plan, settings, sink)`` integrates ``plan`` from
    (θ, p) and calls ``sink`` with an ``End`` after each interval; on a failure it
    raises ``SolverStop`` after reporting every interval before it. ``system`` is a
    ``PortHamiltonianSystem`` or, for solvers with ``ensemble`` set, an ``Ensemble``
    of members (θ and p then have one row per member).
    """

    name = ""
    summary = ""  # one line, for menus and the CLI's help
    adaptive = False  # chooses its own steps to meet rtol and atol
    ensemble = False  # integrates many members at once (gain maps)
    exact_damping = False  # stable for any damping B/m

    def integrate(self, system, theta, p, plan: Plan, settings: Settings, sink: Sink) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<solver {self.name}>"


def finite(x) -> bool:
    """Whether every entry of a tensor or array (or a number) is finite."""
    if hasattr(x, "isfinite"):  # a tensor
        return bool(x.isfinite().all())
    try:
        import numpy as np

        return bool(np.isfinite(x).all())
    except TypeError:
        return math.isfinite(x)
