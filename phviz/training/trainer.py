"""``Trainer``: a configured run integrated one switching interval at a time.

Each mini-batch k defines its own Hamiltonian H_k and is held for one switching
interval Δt; at a switch θ and p are continuous while H jumps. Full-batch
training is the autonomous system: several intervals are integrated in one solve, the
interval boundaries being only the times at which records are taken.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from ..config import SPLITTING_SOLVERS, TrainingConfig
from ..data import Dataset, accuracy
from ..dynamics import conformal_symplectic_step
from .batches import BatchSchedule
from .records import Record, TrainingError
from .run import build_run
from .solve import SolverStop, failure, integrate_odeint, integrate_splitting

# An online run of a model this small (parameters × batch points) on the CPU steps in
# NumPy: its time goes to calling operations on a few numbers, and a NumPy call costs
# a fraction of a torch one (the paper's 6-parameter online run: about 8 times less
# per interval, measured here). Larger ones stay in torch, whose kernels use the cores.
ARRAY_WORK_THRESHOLD = 2**14
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
    """Integrates a configured port-Hamiltonian training run one interval at a time."""

    def __init__(self, config: TrainingConfig | None = None, *, dataset: Dataset | None = None):
        self.config = config = config if config is not None else TrainingConfig()
        run = build_run(config, dataset)
        self.dataset, self.model, self.system = run.dataset, run.model, run.system
        self.device, self.dtype = run.device, run.dtype
        self.initial_theta, self.initial_momentum = run.theta, run.momentum
        generator = np.random.default_rng(config.model_seed)
        n = self.system.dim
        self.tracked = np.sort(generator.choice(n, size=min(config.n_tracked, n), replace=False))
        self._pending: dict = {}
        self._pending_settings: dict = {}
        self._applying = False  # gains taken from _pending, not yet in the system
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

    def reset(self) -> None:
        """Back to t = 0: initial weights and momenta, first batch, empty ledger.

        The batch size is read from the config here (once a run, not every interval);
        gains set since the last interval hold from t = 0.
        """
        self._apply_pending_gains()
        cfg = self.config
        self.batches = BatchSchedule(
            self.dataset,
            self.system,
            cfg.batch_size,
            shuffle=cfg.shuffle,
            seed=cfg.data_seed + 1,
        )
        work = self.system.dim * self.batches.size
        self._arrays = (
            self.device.type == "cpu"
            and self.system.takes_array_gradients
            and work <= ARRAY_WORK_THRESHOLD
        )
        self.xi = torch.cat([self.initial_theta, self.initial_momentum])
        self.t = 0.0
        self.interval = 0
        self.dissipated = self.supplied = self.switch_jumps = self.gain_jumps = 0.0
        self.wall = 0.0
        self.system.nfe = 0
        self.h0 = float(self.system.hamiltonian(self.xi))
        self._h_now = self.h0  # H at self.xi on the batch held, with the gains in force
        self.last = self._record(switched=False, evaluate=True)

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

    # ------------------------------------------------------------- gains
    def configure(self, **settings) -> None:
        """Change solver settings (solver, tolerances, steps, switching interval,
        horizon): checked now, taken at the start of the next interval with any new
        gains, so a run can be told while it is being integrated elsewhere."""
        unknown = set(settings) - set(LIVE_SETTINGS)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise TypeError(
                f"Unknown solver settings: {names} (settings are {', '.join(LIVE_SETTINGS)})"
            )
        TrainingConfig(**{**self.config.values(), **settings})  # raises on a bad value
        with self._pending_lock:
            self._pending_settings.update(settings)

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

    @property
    def pending_gains(self) -> bool:
        """Whether gains set with ``set_gains`` wait for the next interval (until they
        are in the system, so another thread that sees False sees them in force)."""
        with self._pending_lock:
            return bool(self._pending or self._pending_settings) or self._applying

    def _apply_pending_gains(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            settings, self._pending_settings = self._pending_settings, {}
            self._applying = bool(pending)
        if settings:
            self.config.param.update(**settings)
        if not pending:
            return
        try:
            h_before = float(self.system.hamiltonian(self.xi))
            self.system.set_gains(**pending)
            self._h_now = float(self.system.hamiltonian(self.xi))
            self.gain_jumps += self._h_now - h_before
            for k, v in pending.items():
                if isinstance(v, (int, float)):
                    setattr(self.config, k, float(v))
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
        if isinstance(energy, bool) or not isinstance(energy, numbers.Real):
            raise ValueError(f"Invalid kick energy: {energy!r} (must be a number > 0)")
        energy = float(energy)
        if not (math.isfinite(energy) and energy > 0):
            raise ValueError(f"Invalid kick energy: {energy!r} (must be finite and > 0)")
        if direction not in KICK_DIRECTIONS:
            choices = ", ".join(repr(d) for d in KICK_DIRECTIONS)
            raise ValueError(f"Invalid kick direction: {direction!r} (choose {choices})")
        self._apply_pending_gains()
        system = self.system
        theta, p = system.split(self.xi)
        if direction == "momentum" and bool(p.any()):
            d = p.to(torch.float64)
        else:
            generator = np.random.default_rng(seed)
            d = torch.from_numpy(generator.standard_normal(system.dim))
        d = d / d.norm()
        before = float(system.energy(self.xi).kinetic)
        p_new = p + system.impulse(p, d.to(p.device), energy)
        self.xi = torch.cat([theta, p_new])
        kinetic = float(system.energy(self.xi).kinetic)
        booked = kinetic - before
        self.supplied += booked
        self._h_now += booked
        self.last = self._record(switched=False, evaluate=False)
        return booked

    # ------------------------------------------------------------- stepping
    def step(self) -> Record:
        """Integrate one switching interval."""
        return self.advance(1)[0]

    def advance(
        self,
        n: int = 1,
        progress: Callable[[float], None] | None = None,
        *,
        record_every: int = 1,
    ):
        """Integrate ``n`` switching intervals; a record every ``record_every`` of them.

        The last interval, and every one evaluated on the test set (``eval_every``),
        always has its record; ``record_every=1`` (the default) gives one an interval.
        Full batch: one solve across all ``n`` intervals. On a divergence or a solver
        failure a ``TrainingError`` is raised and the state stays at the last finite
        interval (for a multi-interval solve, the intervals before the failure are kept).
        """
        if n < 1:
            return []
        if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
            raise ValueError(
                f"Invalid record_every: {record_every!r} (must be a whole number >= 1)"
            )
        self._apply_pending_gains()
        if self.full_batch:
            try:
                return self._keep(self._solve(n, switch=False, progress=progress), record_every)
            except TrainingError:
                if n == 1:
                    raise
            # replay one interval at a time to keep the ones before the failure
        elif self.config.solver in SPLITTING_SOLVERS and self.system.port is None:
            return self._integrate_online(n, record_every, progress)
        records = []
        try:
            for _ in range(n):
                switch = self.interval > 0 and not self.full_batch
                records.extend(self._solve(1, switch=switch, progress=progress))
        except TrainingError as err:
            err.records = self._keep(records, record_every)
            raise
        return self._keep(records, record_every)

    def _keep(self, records: list[Record], record_every: int) -> list[Record]:
        """The records a stride asks for: every ``record_every``-th, evaluated, last."""
        if record_every == 1:
            return records
        every = self.config.eval_every
        return [
            r
            for i, r in enumerate(records)
            if r.interval % record_every == 0 or r.interval % every == 0 or i == len(records) - 1
        ]

    def run(
        self,
        horizon: float | None = None,
        progress: Callable[[float], None] | None = None,
        *,
        record_every: int = 1,
    ):
        """Integrate until t reaches ``horizon`` (default: config.horizon).

        ``record_every``: keep one record every so many intervals (see ``advance``); a
        long online run spends most of its time building records it does not need.
        """
        horizon = self.config.horizon if horizon is None else horizon
        n = max(0, round((horizon - self.t) / self.config.switching_interval))
        if self.full_batch or self.config.solver in SPLITTING_SOLVERS:
            return self.advance(n, progress, record_every=record_every)
        records = []
        for _ in range(n):
            records.extend(self.advance(1, progress))
        return self._keep(records, record_every)

    def _integrate_online(self, n: int, record_every: int, progress) -> list[Record]:
        """``n`` mini-batch intervals of the conformal-symplectic splitting in one loop.

        The same steps as ``integrate_splitting``, interval after interval, with the
        switches' jumps a·(L_k(θ) − L_{k−1}(θ)) and the dissipated energy summed as
        they come (every interval is booked); a record, with its full-set losses, is
        built only at the intervals ``record_every`` and ``eval_every`` ask for. A small
        model on the CPU steps in NumPy (``ARRAY_WORK_THRESHOLD``).
        """
        cfg, system = self.config, self.system
        steps = max(1, round(cfg.switching_interval / cfg.step_size))
        if steps > cfg.max_steps:
            raise self._failure("steps", self.t)
        h = cfg.switching_interval / steps
        self._online_base = dict(
            started=time.perf_counter(),
            t=self.t,
            interval=self.interval,
            wall=self.wall,
            dissipated=self.dissipated,
            jumps=self.switch_jumps,
        )
        theta, p = system.split(self.xi)
        damping, inertia = system.damping, system.inertia
        if self._arrays:  # small model on the CPU: NumPy, for its cheaper calls
            theta, p = theta.numpy().copy(), p.numpy().copy()
            damping, inertia = _array_gain(damping), _array_gain(inertia)
            batch = self.batches.array_batch()

            def gradient(q):
                return system.array_loss_and_gradient(q, *batch)

        else:
            gradient = system.loss_and_gradient
        dissipated = jumps = 0.0
        a = system.potential_gain
        cache: list = [None, None, None]  # the last θ, its loss and force on the batch held

        def force(q):
            if cache[0] is not q:
                system.nfe += 1
                loss, grad = gradient(q)
                cache[0], cache[1], cache[2] = q, loss, -grad
            return cache[2]

        with torch.no_grad():
            loss = gradient(theta)[0]  # L on the batch held: H before the next switch
        records: list[Record] = []
        # a diverging state is caught below, by its energy: NumPy need not warn of it
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for k in range(1, n + 1):
                good = (theta, p, dissipated, jumps, loss, self.batches.snapshot())
                switch = self.interval > 0
                if switch:
                    self.batches.next(hold=not self._arrays)
                    if self._arrays:
                        batch = self.batches.array_batch()
                    cache[0] = None  # a new batch: the force at the same θ is another one
                    force(theta)
                    jumps = jumps + a * (cache[1] - loss)
                for _ in range(steps):
                    theta, p, drained = conformal_symplectic_step(
                        theta, p, force, h, damping, inertia
                    )
                    dissipated = dissipated + drained
                loss = cache[1] if cache[0] is theta else gradient(theta)[0]
                # a state that is not finite makes the drained energy or the jump NaN or ∞
                if not math.isfinite(dissipated + jumps):
                    theta, p, dissipated, jumps, loss, batch_state = good
                    self.batches.restore(batch_state)
                    if k > 1 and (not records or records[-1].interval != self.interval):
                        state = (theta, p, dissipated, jumps, loss, False)
                        records.append(self._online_record(*state))
                    when = self._online_base["t"] + k * cfg.switching_interval
                    err = self._failure("nonfinite", round(when, 12))
                    err.records = records
                    raise err
                self.interval += 1
                if k == n or self.interval % record_every == 0 or self._evaluates():
                    records.append(self._online_record(theta, p, dissipated, jumps, loss, switch))
                    if progress is not None:
                        progress(self.t)
        return records

    def _evaluates(self) -> bool:
        return self.interval % self.config.eval_every == 0

    def _online_record(self, theta, p, dissipated, jumps, loss, switched) -> Record:
        """Make (θ, p) and the sums since the loop began the trainer's state; its record."""
        base = self._online_base
        if self._arrays:
            theta, p, loss = torch.from_numpy(theta), torch.from_numpy(p), torch.tensor(loss)
            self.batches.hold()  # the system's own batch, for what comes after the loop
        self.xi = torch.cat([theta, p])
        self.dissipated = base["dissipated"] + float(dissipated)
        self.switch_jumps = base["jumps"] + float(jumps)
        intervals = self.interval - base["interval"]
        self.t = round(base["t"] + intervals * self.config.switching_interval, 12)
        self.wall = base["wall"] + time.perf_counter() - base["started"]
        energy = self.system.energy(self.xi, loss)
        if not math.isfinite(float(energy.total)):
            raise self._failure("nonfinite", self.t)  # finite state, energy overflows
        self.last = self._record(
            switched=switched, evaluate=self._evaluates(), energy=energy, batch_loss=loss
        )
        self._h_now = self.last.hamiltonian
        return self.last

    def _solve(self, n: int, *, switch: bool, progress) -> list[Record]:
        cfg, system = self.config, self.system
        started, nfe_start = time.perf_counter(), system.nfe
        splitting = cfg.solver in SPLITTING_SOLVERS
        if switch:
            h_before = self._h_now
            self.batches.next()
            if not splitting:  # the splitting books the jump from its first gradient
                self.switch_jumps += float(system.hamiltonian(self.xi)) - h_before
        dt, t0 = cfg.switching_interval, self.t
        y0 = torch.cat([self.xi, self.xi.new_zeros(2)])
        losses = [None] * (n + 1)
        try:
            # a diverging state is caught below and by the solvers' checks: the field's
            # NumPy arithmetic need not warn of it
            with torch.no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if splitting:
                    on_switch = None
                    if switch:

                        def on_switch(h_after):
                            self.switch_jumps += h_after - h_before

                    ys = integrate_splitting(system, cfg, y0, t0, n, progress, losses, on_switch)
                else:
                    ys = integrate_odeint(system, cfg, y0, t0, n, progress)
        except SolverStop as stop:
            raise self._failure(stop.reason, stop.t) from None
        except (torch.cuda.OutOfMemoryError, MemoryError) as err:
            raise self._failure("memory", self.t, err) from None
        if not bool(torch.isfinite(ys).all()):
            raise self._failure("nonfinite", self.t)
        records = []
        base_dissipated, base_supplied, base_wall = self.dissipated, self.supplied, self.wall
        elapsed = time.perf_counter() - started
        nfe_end = system.nfe
        for k in range(1, n + 1):
            y = ys[k]
            xi = y[:-2]
            batch_loss = losses[k]
            if batch_loss is None:
                with torch.no_grad():
                    batch_loss = system.loss(xi[: system.dim])
            energy = system.energy(xi, batch_loss)
            if not math.isfinite(float(energy.total)):
                raise self._failure("nonfinite", self.t)  # finite state, energy overflows
            self.xi = xi.clone()
            self.dissipated = base_dissipated + float(y[-2])
            self.supplied = base_supplied + float(y[-1])
            self.t = round(t0 + k * dt, 12)  # no 0.30000000000000004 in the status line
            self.interval += 1
            # one solve spans the n intervals: spread its cost over them evenly
            self.wall = base_wall + elapsed * k / n
            system.nfe = nfe_start + round((nfe_end - nfe_start) * k / n)
            evaluate = self.interval % cfg.eval_every == 0
            self.last = self._record(
                switched=switch and k == 1, evaluate=evaluate, energy=energy, batch_loss=batch_loss
            )
            self._h_now = self.last.hamiltonian
            records.append(self.last)
        return records

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
        loss_fn = ds.loss_fn
        out = system.forward(theta, ds.x_train)
        result = {"train_loss": float(loss_fn(out, ds.y_train))}
        if ds.task == "classification":
            result["train_accuracy"] = accuracy(out, ds.y_train)
        if len(ds.x_test):
            out_test = system.forward(theta, ds.x_test)
            result["test_loss"] = float(loss_fn(out_test, ds.y_test))
            if ds.task == "classification":
                result["accuracy"] = accuracy(out_test, ds.y_test)
        return result

    def _record(self, *, switched: bool, evaluate: bool, energy=None, batch_loss=None) -> Record:
        """The record of the current state; ``energy`` and ``batch_loss`` if already known.

        In full batch the batch is the training set, so its loss is the train loss and
        one forward pass serves the energy, the divergence check and the record.
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
            metrics = {"train_loss": self._train_loss(theta)}
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
            theta_sample=theta_cpu[self.tracked],
            p_sample=p_sample.numpy().copy(),
            theta=theta_cpu,
            **metrics,
        )

    @torch.no_grad()
    def _train_loss(self, theta: torch.Tensor) -> float:
        ds = self.dataset
        return float(ds.loss_fn(self.system.forward(theta, ds.x_train), ds.y_train))

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


def _array_gain(gain):
    return gain.detach().cpu().numpy() if isinstance(gain, torch.Tensor) else gain
