"""What a Trainer gives its solver to report to: the interval ends, made into the run's
state and records once the solve is over."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..solvers import Plan
from .records import Record, TrainingError


class IntervalSink:
    """The sink a Trainer gives its solver: it keeps the interval ends that will have a
    record (and the latest, for a failure), and makes the records once the solve is
    over, spreading its cost in seconds and evaluations evenly over the intervals."""

    def __init__(self, trainer, plan: Plan, record_every: int):
        self.trainer, self.plan, self.every = trainer, plan, record_every
        self.eval_every = trainer.config.eval_every
        self.first = trainer.interval  # intervals done before
        self.started, self.nfe = time.perf_counter(), trainer.system.nfe
        self.base = (trainer.dissipated, trainer.supplied, trainer.switch_jumps, trainer.wall)
        self.kept: list = []
        self.latest = None
        self.sums = (0.0, 0.0, 0.0)  # dissipated, supplied and jumps since the call began
        self.count = 0

    def __call__(self, end) -> None:
        k, self.count = self.count, self.count + 1
        # summed interval by interval, in this order, however a run is cut into calls
        self.sums = tuple(
            total + float(part)
            for total, part in zip(self.sums, (end.dissipated, end.supplied, end.jump), strict=True)
        )
        interval = self.first + k + 1
        state = (k, end, self.sums, self.trainer.batches.snapshot(), self.plan.switches(k))
        self.latest = state
        if k == self.plan.n - 1 or interval % self.every == 0 or interval % self.eval_every == 0:
            self.kept.append(state)

    def records(self, failed: bool = False) -> list[Record]:
        """The records kept (after a failure, the latest good interval's too). A state
        whose energy overflows raises its ``TrainingError``, with the records before it."""
        if (
            failed
            and self.latest is not None
            and (not self.kept or self.kept[-1] is not self.latest)
        ):
            self.kept.append(self.latest)
        elapsed = time.perf_counter() - self.started
        spent = self.trainer.system.nfe - self.nfe
        done = max(1, self.count)
        made: list[Record] = []
        for state in self.kept:
            try:
                made.append(self._commit(state, elapsed, spent, done))
            except TrainingError as err:
                err.records = made
                raise
        return made

    def _commit(self, state, elapsed: float, spent: int, done: int) -> Record:
        """Make an interval end the trainer's state, and its record; a state whose energy
        overflows is not taken."""
        k, end, sums, batch_state, switched = state
        tr, system = self.trainer, self.trainer.system
        theta, p = _tensor(end.theta, tr.xi), _tensor(end.p, tr.xi)
        xi = torch.cat([theta, p])
        loss = end.loss
        if loss is not None and not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss), dtype=xi.dtype)
        if loss is None:  # full batch by an ODE solver: the batch held is the interval's
            with torch.no_grad():
                loss = system.loss(theta)
        energy = system.energy(xi, loss)
        if not math.isfinite(float(energy.total)):  # a finite state whose energy overflows
            raise tr._failure("nonfinite", self.plan.end(k))
        dissipated, supplied, switch_jumps, wall = self.base
        tr.xi, tr._loss_now = xi, loss
        tr.dissipated = dissipated + sums[0]
        tr.supplied = supplied + sums[1]
        tr.switch_jumps = switch_jumps + sums[2]
        tr.interval = self.first + k + 1
        tr.t = self.plan.end(k)
        tr.wall = wall + elapsed * (k + 1) / done
        system.nfe = self.nfe + round(spent * (k + 1) / done)
        tr.batches.restore(batch_state)
        evaluate = tr.interval % tr.config.eval_every == 0
        tr.last = tr._record(switched=switched, evaluate=evaluate, energy=energy, batch_loss=loss)
        tr._h_now = tr.last.hamiltonian
        return tr.last


def _tensor(x, like: torch.Tensor) -> torch.Tensor:
    """A solver's θ or p as a tensor like the trainer's state (a copy, never a view)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy()).to(like)
    return x.detach().clone().to(like)
