"""``Trainer``: a configured run, integrated a number of switching intervals at a time.

Each mini-batch k defines its own Hamiltonian H_k and is held for one switching
interval Δt; at a switch θ and p are continuous while H jumps. Full-batch training is
the autonomous system. The integrating is the solver's (``phviz.solvers``); the Trainer
keeps the run's state, its energy ledger and its records.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable

import numpy as np
import torch

from ..config import TrainingConfig
from ..data import Dataset
from ..losses import accuracy
from ..solvers import Plan, Settings, SolverStop, get_solver
from .batches import BatchSchedule
from .failures import failure
from .records import Record, TrainingError
from .run import build_run
from .sink import IntervalSink

# Settings a running trainer takes at its next interval (``Trainer.configure``).
LIVE_SETTINGS = (
    "solver",
    "rtol",
    "atol",
    "step_size",
    "max_steps",
    "step_control",
    "switching_interval",
    "horizon",
)
# Directions of ``Trainer.kick``: along the momenta, or a random one.
KICK_DIRECTIONS = ("momentum", "random")


class Trainer:
    """Integrates a configured port-Hamiltonian training run one interval at a time.

    ``set_gains`` and ``configure`` may be called from any thread: they are checked at
    once and taken at the start of the next interval. Everything else belongs to the
    thread that integrates.
    """

    def __init__(self, config: TrainingConfig | None = None, *, dataset: Dataset | None = None):
        self.config = config = config if config is not None else TrainingConfig()
        run = build_run(config, dataset)
        self.dataset, self.model, self.system = run.dataset, run.model, run.system
        self.device, self.dtype = run.device, run.dtype
        self.initial_theta, self.initial_momentum = run.theta, run.momentum
        generator = np.random.default_rng(config.model_seed)
        n = self.system.dim
        self.tracked = generator.choice(n, size=min(config.n_tracked, n), replace=False)
        self._pending: dict = {}
        self._pending_settings: dict = {}
        self._applying = False  # changes taken from the pending ones, not yet in force
        self._pending_lock = threading.Lock()
        self.reset()

    # ------------------------------------------------------------- state
    @property
    def n_train(self) -> int:
        return len(self.dataset.x_train)

    @property
    def batch_size(self) -> int:
        return self.batches.size

    @property
    def full_batch(self) -> bool:
        return self.batches.full

    @property
    def batches_per_epoch(self) -> int:
        return self.batches.per_epoch

    @property
    def tracked(self) -> np.ndarray:
        """The coordinates of θ and p sampled into every record (sorted indices)."""
        return self._tracked

    @tracked.setter
    def tracked(self, indices) -> None:
        indices = np.sort(np.asarray(indices, dtype=np.int64).reshape(-1))
        n = self.system.dim
        if not len(indices) or indices[0] < 0 or indices[-1] >= n:
            raise ValueError(f"Invalid tracked coordinates: {indices.tolist()} (need 0 <= i < {n})")
        # θ and p are sampled by the same indices: one assignment sets both
        self._tracked = indices
        self._tracked_index = torch.as_tensor(indices, device=self.device)

    def track(self, seed: int) -> np.ndarray:
        """A new seeded sample of tracked coordinates, as many as before; returns it."""
        n, k = self.system.dim, len(self._tracked)
        self.tracked = np.random.default_rng(seed).choice(n, size=k, replace=False)
        return self.tracked

    def reset(self) -> None:
        """Back to t = 0: initial weights and momenta, first batch, empty ledger.

        The batch schedule is read from the config here (once a run); changes pending
        since the last interval hold from t = 0.
        """
        self._apply_pending()
        self.batches = BatchSchedule.of(self.config, self.dataset)
        self.batches.hold(self.system)
        self.xi = torch.cat([self.initial_theta, self.initial_momentum])
        self.t = 0.0
        self.interval = 0
        self.dissipated = self.supplied = self.switch_jumps = self.gain_jumps = 0.0
        self.wall = 0.0
        self.system.nfe = 0
        with torch.no_grad():
            self._loss_now = self.system.loss(self.xi[: self.system.dim])  # on the batch held
        self.h0 = float(self.system.energy(self.xi, self._loss_now).total)
        self._h_now = self.h0  # H at self.xi on the batch held, with the gains in force
        self.last = self._record(switched=False, evaluate=True)

    # ------------------------------------------------------------- changes
    def set_gains(self, **gains) -> None:
        """Change gains (damping, inertia, potential_gain, weight_decay).

        They are checked now and take effect at the start of the next interval, so a
        running thread can be told without a reset. A change of a, c or M moves H at
        once (θ and p stay): the jump is booked in ``gain_jumps``, as a batch switch is,
        so the ledger's residual stays the integrator's alone.
        """
        self.system.resolve_gains(**gains)  # raises on bad values, changes nothing
        with self._pending_lock:
            self._pending.update({k: v for k, v in gains.items() if v is not None})

    def configure(self, **settings) -> None:
        """Change solver settings (``LIVE_SETTINGS``): checked now, taken at the start
        of the next interval with any new gains."""
        unknown = sorted(set(settings) - set(LIVE_SETTINGS))
        if unknown:
            raise TypeError(
                f"Unknown solver settings: {', '.join(unknown)} "
                f"(settings are {', '.join(LIVE_SETTINGS)})"
            )
        TrainingConfig(**{**self.config.values(), **settings})  # raises on a bad value
        with self._pending_lock:
            self._pending_settings.update(settings)

    @property
    def pending_gains(self) -> bool:
        """Whether changes wait for the next interval (until they are in force, so a
        thread that sees False sees them in force)."""
        with self._pending_lock:
            return bool(self._pending or self._pending_settings) or self._applying

    def _apply_pending(self) -> None:
        with self._pending_lock:
            gains, self._pending = self._pending, {}
            settings, self._pending_settings = self._pending_settings, {}
            self._applying = bool(gains or settings)
        try:
            if settings:
                self.config.param.update(**settings)
            if gains:
                h_before = float(self.system.hamiltonian(self.xi))
                self.system.set_gains(**gains)
                self._h_now = float(self.system.hamiltonian(self.xi))
                self.gain_jumps += self._h_now - h_before
                numbers_only = {k: float(v) for k, v in gains.items() if _is_number(v)}
                self.config.param.update(**numbers_only)
        finally:
            with self._pending_lock:
                self._applying = False

    # ------------------------------------------------------------- the port
    def kick(self, energy: float, direction: str = "momentum", seed: int | None = None) -> float:
        """Put ``energy`` into the momenta at once, through the port; returns ΔE booked.

        An impulse p ← p + α·d, α > 0 chosen so that ½pᵀM⁻¹p rises by exactly ΔE:
        ``direction`` "momentum" pushes along p (a seeded random direction where p = 0),
        "random" along a seeded random unit vector. θ does not move, so H rises by ΔE
        too; the rise is booked as supplied energy (∫vᵀu), so the ledger's residual does
        not move. The record of the kicked state becomes ``last``.
        """
        if not _is_number(energy):
            raise ValueError(f"Invalid kick energy: {energy!r} (must be a number > 0)")
        energy = float(energy)
        if not (math.isfinite(energy) and energy > 0):
            raise ValueError(f"Invalid kick energy: {energy!r} (must be finite and > 0)")
        if direction not in KICK_DIRECTIONS:
            choices = ", ".join(repr(d) for d in KICK_DIRECTIONS)
            raise ValueError(f"Invalid kick direction: {direction!r} (choose {choices})")
        self._apply_pending()
        system = self.system
        theta, p = system.split(self.xi)
        if direction == "momentum" and bool(p.any()):
            d = p.to(torch.float64)
        else:
            d = torch.from_numpy(np.random.default_rng(seed).standard_normal(system.dim))
        d = d / d.norm()
        before = float(system.energy(self.xi, self._loss_now).kinetic)
        self.xi = torch.cat([theta, p + system.impulse(p, d.to(p.device), energy)])
        kicked = system.energy(self.xi, self._loss_now)  # θ stays: so does L
        booked = float(kicked.kinetic) - before
        self.supplied += booked
        self._h_now += booked
        self.last = self._record(switched=False, evaluate=False, energy=kicked)
        return booked

    # ------------------------------------------------------------- stepping
    def step(self) -> Record:
        """Integrate one switching interval."""
        return self.advance(1)[0]

    def advance(
        self, n: int = 1, progress: Callable[[float], None] | None = None, *, record_every=1
    ) -> list[Record]:
        """Integrate ``n`` switching intervals; a record every ``record_every`` of them.

        The last interval, and every one evaluated on the test set (``eval_every``),
        always has its record. On a divergence or a solver failure a ``TrainingError``
        is raised, carrying the records of the intervals before it, and the state stays
        at the last good interval.
        """
        if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
            raise ValueError(
                f"Invalid record_every: {record_every!r} (must be a whole number >= 1)"
            )
        if n < 1:
            return []
        self._apply_pending()
        cfg, system = self.config, self.system
        batches = None if self.full_batch else self.batches
        plan = Plan(self.t, cfg.switching_interval, n, batches, self.interval > 0, progress)
        plan.loss = self._loss_now
        ends = IntervalSink(self, plan, record_every)
        theta, p = system.split(self.xi)
        try:
            get_solver(cfg.solver).integrate(system, theta, p, plan, Settings.of(cfg), ends)
        except SolverStop as stop:
            raise self._stopped(ends, self._failure(stop.reason, stop.t)) from None
        except (torch.cuda.OutOfMemoryError, MemoryError) as err:
            raise self._stopped(ends, self._failure("memory", self.t, err)) from None
        return ends.records()

    def run(
        self, horizon: float | None = None, progress=None, *, record_every: int = 1
    ) -> list[Record]:
        """Integrate until t reaches ``horizon`` (default: config.horizon), keeping one
        record every ``record_every`` intervals (see ``advance``)."""
        horizon = self.config.horizon if horizon is None else horizon
        n = max(0, round((horizon - self.t) / self.config.switching_interval))
        return self.advance(n, progress, record_every=record_every)

    def _stopped(self, ends: IntervalSink, err: TrainingError) -> TrainingError:
        """The run at its last good interval, ``err`` carrying the records before it."""
        try:
            err.records = ends.records(failed=True)
        except TrainingError as overflow:  # the last good state's energy overflows
            err = overflow
        self.batches.hold(self.system)
        return err

    def _failure(self, reason: str, t: float, err: Exception | None = None) -> TrainingError:
        """A ``TrainingError`` naming the gains, the time and what to try."""
        where = f"interval {self.interval}, epoch {self.batches.epoch}"
        return failure(self.config, reason, t, where=where, device=self.device, err=err)

    # ------------------------------------------------------------- records
    @torch.no_grad()
    def evaluate(self, theta: torch.Tensor | None = None) -> dict:
        """Train loss and, where there are test points, test loss and accuracy."""
        theta = self.xi[: self.system.dim] if theta is None else theta
        ds, system = self.dataset, self.system
        out = system.forward(theta, ds.x_train)
        result = {"train_loss": float(ds.loss_fn(out, ds.y_train))}
        if ds.task == "classification":
            result["train_accuracy"] = accuracy(out, ds.y_train)
        if len(ds.x_test):
            out_test = system.forward(theta, ds.x_test)
            result["test_loss"] = float(ds.loss_fn(out_test, ds.y_test))
            if ds.task == "classification":
                result["accuracy"] = accuracy(out_test, ds.y_test)
        return result

    @torch.no_grad()
    def _record(self, *, switched: bool, evaluate: bool, energy=None, batch_loss=None) -> Record:
        """The record of the current state; ``energy`` and ``batch_loss`` if known.

        In full batch the batch is the training set, so its loss is the train loss.
        """
        system = self.system
        theta, p = system.split(self.xi)
        energy = system.energy(self.xi) if energy is None else energy
        h = float(energy.total)
        if evaluate:
            metrics = self.evaluate()
        elif self.full_batch and batch_loss is not None:
            metrics = {"train_loss": float(batch_loss)}
        else:
            ds = self.dataset
            metrics = {
                "train_loss": float(ds.loss_fn(system.forward(theta, ds.x_train), ds.y_train))
            }
        theta_cpu = theta.detach().to("cpu", torch.float32).numpy().copy()
        p_sample = p[self._tracked_index].to("cpu", torch.float32)
        return Record(
            t=self.t,
            interval=self.interval,
            epoch=self.batches.epochs(self.interval),
            batch=self.batches.index,
            switched=switched,
            hamiltonian=h,
            kinetic=float(energy.kinetic),
            potential=float(energy.potential),
            dissipated=self.dissipated,
            supplied=self.supplied,
            switch_jumps=self.switch_jumps,
            gain_jumps=self.gain_jumps,
            ledger_residual=(
                h - self.h0 + self.dissipated - self.supplied - self.switch_jumps - self.gain_jumps
            ),
            momentum_norm=float(p.norm()),
            nfe=system.nfe,
            wall=self.wall,
            theta_sample=theta_cpu[self._tracked],
            p_sample=p_sample.numpy().copy(),
            theta=theta_cpu,
            **metrics,
        )

    def summary(self) -> dict:
        """The run's outcome as plain numbers (the JSON the CLI writes)."""
        final = self.evaluate()
        last = self.last
        out = {
            "final_train_loss": final["train_loss"],
            "wall_seconds": self.wall,
            "nfe": self.system.nfe,
            "t_final": self.t,
            "final_hamiltonian": last.hamiltonian,
            "ledger_residual": last.ledger_residual,
            "dissipated": last.dissipated,
            "intervals": self.interval,
            "epochs": last.epoch,
            "device": str(self.device),
        }
        for key in ("test_loss", "accuracy", "train_accuracy"):
            if key in final:
                out[key] = final[key]
        return out


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
