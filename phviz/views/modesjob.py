"""The Modes view's work in a session's slices: a spectrum now and then, the run's
motion along its extreme Ritz vectors after it, and the damping note's extremes.

``ModesJob`` belongs to a session's ``Pictures`` and, like them, runs only inside the
session's slices. ``make`` computes a ``ModesPicture`` (``spectra.modes_picture``) at
a record of the run; from then on each record's θ is projected on that picture's unit
Ritz vectors, q_j(t) = v_j·(θ(t) − θ(t_s)), into a bounded ``ModesTrace``. Near a
minimum each such coordinate is one damped oscillator: along a stiff vector the run
rings about the valley floor, along a flat one it creeps, along a saddle's it runs
away. The damping note's ``Stiffness`` (the stiffest and flattest curvature and the
damping critical for each) is read off the same spectrum with the trainer's gains, so
one Lanczos computation serves the view and the note. The server's thread reads only
the immutable ``picture``, ``trace`` and ``stiffness``. No GUI code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..dynamics import critical_damping
from .pictures import Stiffness
from .spectra import ModesPicture, modes_picture

TRACE_ROWS = 401  # odd, so halving keeps the spectrum's own time t_s


@dataclass(frozen=True, eq=False)
class ModesTrace:
    """Projections of the run on one spectrum's Ritz vectors, from its time t_s on.

    ``version``: the ``ModesPicture`` the vectors are of; ``t`` (n,) the times and ``q``
    (n, k) the projections v_j·(θ(t) − θ(t_s)), one column per entry of the picture's
    ``spectrum.vector_values`` (ascending). ``generation`` changes whenever rows were
    dropped or the trace restarted, so a reader that holds ``size`` rows of the same
    generation needs only the rows after them.
    """

    version: int
    generation: int
    t: np.ndarray
    q: np.ndarray

    @property
    def size(self) -> int:
        return len(self.t)


class ModeTrace:
    """The bounded trace behind ``ModesTrace``: every ``stride``-th record is kept and,
    when ``capacity`` rows are full, every other row is dropped and the stride doubles,
    so the whole time since t_s stays covered evenly."""

    def __init__(self, capacity: int = TRACE_ROWS):
        if capacity < 3 or capacity % 2 == 0:
            raise ValueError(f"Invalid capacity: {capacity!r} (must be odd and >= 3)")
        self.capacity = capacity
        self.picture: ModesPicture | None = None
        self.generation = 0
        self._t = np.zeros(capacity)
        self._q = np.zeros((capacity, 0))
        self.size = 0
        self._reset_counts()
        self._shown: ModesTrace | None = None

    def _reset_counts(self) -> None:
        self.stride = 1
        self._since = 0

    def restart(self, picture: ModesPicture) -> None:
        """Project on ``picture``'s vectors from its time on (zero there)."""
        self.picture = picture
        self.generation += 1
        self._q = np.zeros((self.capacity, len(picture.vectors)))
        self.size = 0
        self._reset_counts()
        self._put(picture.t, np.zeros(len(picture.vectors)))
        self._shown = None

    def extend(self, records) -> None:
        """The records' θ projected (those after the last row only)."""
        picture = self.picture
        if picture is None or not records:
            return
        last = self._t[self.size - 1]
        later = [r for r in records if r.t > last]
        if not later:
            return
        thetas = np.stack([np.asarray(r.theta, dtype=np.float32) for r in later])
        projected = thetas @ picture.vectors.T - picture.origin
        for record, q in zip(later, projected, strict=True):
            self._since += 1
            if self._since < self.stride:
                continue
            if self.size == self.capacity:
                self._halve()
                if self._since < self.stride:
                    continue
            self._put(record.t, q)
        self._shown = None

    def _put(self, t: float, q: np.ndarray) -> None:
        self._t[self.size] = t
        self._q[self.size] = q
        self.size += 1
        self._since = 0

    def _halve(self) -> None:
        keep = np.arange(0, self.size, 2)
        self._t[: len(keep)] = self._t[keep]
        self._q[: len(keep)] = self._q[keep]
        self.size = len(keep)
        self.stride *= 2
        self.generation += 1

    @property
    def shown(self) -> ModesTrace | None:
        """The trace as an immutable snapshot (made again only after a change)."""
        if self.picture is None:
            return None
        if self._shown is None:
            t, q = self._t[: self.size].copy(), self._q[: self.size].copy()
            t.setflags(write=False)
            q.setflags(write=False)
            self._shown = ModesTrace(self.picture.version, self.generation, t, q)
        return self._shown


def _largest(gain) -> float:
    """A gain's value as one number: a per-parameter gain by its largest entry."""
    return float(gain.max()) if isinstance(gain, torch.Tensor) else float(gain)


def stiffness_from(picture: ModesPicture, system, version: int) -> Stiffness:
    """The damping note's estimate from ``picture``'s spectrum of L: its extreme
    curvatures and the damping critical for each with ``system``'s gains (a per-layer
    gain by its largest entry, as the note has one number for each)."""
    lowest, highest = picture.spectrum.extremes
    a = _largest(system.potential_gain)
    decay, inertia = _largest(system.weight_decay), _largest(system.inertia)

    def critical(curvature: float) -> float:
        return critical_damping(curvature, inertia=inertia, potential_gain=a, weight_decay=decay)

    return Stiffness(
        picture.t,
        curvature=highest,
        critical=critical(highest),
        version=version,
        flattest=lowest,
        flattest_critical=critical(lowest),
    )


class ModesJob:
    """The spectrum, the trace along its vectors and the damping note's estimate of
    one session's trainer, within ``memory_bytes``; used inside its slices only."""

    def __init__(self, trainer, memory_bytes: int):
        self.trainer = trainer
        self.memory_bytes = memory_bytes
        self.picture: ModesPicture | None = None
        self.stiffness: Stiffness | None = None
        self.tracker = ModeTrace()
        self._regain = False  # gains changed since the estimate was made

    def make(self, record, version: int) -> None:
        """The spectrum at ``record``'s θ; the trace starts there."""
        picture = modes_picture(
            self.trainer, record.theta, record.t, version, memory_bytes=self.memory_bytes
        )
        if not all(math.isfinite(x) for x in picture.spectrum.extremes):
            raise ValueError(f"the loss has no finite curvature at t = {record.t:g}")
        self.picture = picture
        self.tracker.restart(picture)
        self.stiffness = stiffness_from(picture, self.trainer.system, version)
        self._regain = False

    def track(self, records) -> None:
        """New records: projected onto the vectors."""
        self.tracker.extend(records)

    @property
    def stale(self) -> bool:
        """Gains came into force (at the trainer's interval after ``regain``) that the
        damping note's estimate has not taken yet."""
        return self._regain and self.picture is not None and not self.trainer.pending_gains

    def regain(self, version: int) -> None:
        """New gains: the note's critical damping follows them once they are in force;
        the spectrum of L itself does not change with them."""
        self._regain = True
        if self.stale:
            self.stiffness = stiffness_from(self.picture, self.trainer.system, version)
            self._regain = False

    @property
    def trace(self) -> ModesTrace | None:
        return self.tracker.shown
