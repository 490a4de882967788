"""Training as a hybrid (switched) port-Hamiltonian system, producing records.

Each mini-batch k defines its own Hamiltonian H_k and is held for one switching
interval Δt; at a switch θ and p are continuous while H jumps (DESIGN §1). Full-batch
training is the autonomous system: several intervals are integrated in one solve, the
interval boundaries being only the times at which records are taken.

``Trainer`` is the stepping core (``step``, ``advance``, ``run``, ``reset``);
``BackgroundRun`` runs one in a thread with play/pause/step for live views.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torchdiffeq import odeint

from .config import ADAPTIVE_SOLVERS, TrainingConfig
from .data import Dataset, accuracy, make_dataset
from .dynamics import PortHamiltonianSystem
from .models import build_model


class TrainingError(RuntimeError):
    """A run had to stop; the message says when, with which gains, and what to try."""

    def __init__(self, message: str, *, t: float, kind: str):
        super().__init__(message)
        self.t = t
        self.kind = kind  # "diverged" or "solver"
        self.records: list[Record] = []  # intervals completed before the failure


@dataclass
class Record:
    """The state of a run at the end of one switching interval."""

    t: float
    interval: int  # switching intervals completed
    epoch: float  # passes over the training set (fractional within an epoch)
    batch: int  # index of the batch just integrated within its epoch
    switched: bool  # the batch changed at the start of this interval
    train_loss: float  # mean loss over the whole training set
    hamiltonian: float  # H = kinetic + potential, on the batch held
    kinetic: float
    potential: float
    dissipated: float  # ∫ vᵀBv dt since the start
    supplied: float  # ∫ vᵀu dt since the start
    switch_jumps: float  # Σ (H_k − H_{k−1}) at the switches
    ledger_residual: float  # H(t) − H(0) + dissipated − supplied − switch_jumps
    momentum_norm: float  # ‖p‖
    nfe: int  # vector-field evaluations since the start
    wall: float  # seconds of computing since the start
    theta_sample: np.ndarray = field(repr=False)  # θ at the tracked coordinates
    p_sample: np.ndarray = field(repr=False)  # p at the tracked coordinates
    theta: np.ndarray = field(repr=False)  # the whole θ (float32, CPU)
    test_loss: float = math.nan  # evaluated every config.eval_every intervals
    accuracy: float = math.nan  # test accuracy (classification)
    train_accuracy: float = math.nan

    def scalars(self) -> dict:
        """The record's numbers, without the arrays."""
        d = asdict(self)
        for k in ("theta_sample", "p_sample", "theta"):
            d.pop(k)
        return d


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("Invalid device: 'cuda' (no CUDA device is available here; use 'cpu')")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"Invalid device: {name!r} (choose 'auto', 'cpu' or 'cuda')")
    return torch.device(name)


class Trainer:
    """Integrates a configured port-Hamiltonian training run one interval at a time."""

    def __init__(self, config: TrainingConfig | None = None, *, dataset: Dataset | None = None):
        self.config = config = config if config is not None else TrainingConfig()
        self.device = resolve_device(config.device)
        self.dtype = getattr(torch, config.dtype)
        if dataset is None:
            dataset = make_dataset(
                config.dataset,
                n_samples=config.n_samples,
                noise=config.noise,
                train_fraction=config.train_fraction,
                seed=config.data_seed,
            )
        self.dataset = dataset.to(self.device, self.dtype)
        self.model = build_model(
            self.dataset.input_dim,
            self.dataset.output_dim,
            architecture=config.architecture,
            hidden=config.hidden,
            activation=config.activation,
            softplus_beta=config.softplus_beta,
            seed=config.model_seed,
            device=self.device,
            dtype=self.dtype,
        )
        self.system = PortHamiltonianSystem(
            self.model,
            self.dataset.loss_fn,
            damping=config.damping,
            inertia=config.inertia,
            potential_gain=config.potential_gain,
            weight_decay=config.weight_decay,
        )
        self.initial_theta = self.system.initial_state()[: self.system.dim].clone()
        generator = np.random.default_rng(config.model_seed)
        n = self.system.dim
        self.tracked = np.sort(generator.choice(n, size=min(config.n_tracked, n), replace=False))
        self._pending: dict = {}
        self._pending_lock = threading.Lock()
        self.reset()

    # ------------------------------------------------------------- state
    @property
    def n_train(self) -> int:
        return len(self.dataset.x_train)

    @property
    def batch_size(self) -> int:
        b = self.config.batch_size
        return self.n_train if b <= 0 or b >= self.n_train else b

    @property
    def full_batch(self) -> bool:
        return self.batch_size == self.n_train

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    def reset(self) -> None:
        """Back to t = 0: initial weights, p = 0, first batch, empty ledger; gains set
        since the last interval hold from t = 0."""
        self._apply_pending_gains()
        self.xi = torch.cat([self.initial_theta, torch.zeros_like(self.initial_theta)])
        self.t = 0.0
        self.interval = 0
        self.dissipated = self.supplied = self.switch_jumps = 0.0
        self.wall = 0.0
        self.system.nfe = 0
        self._shuffle = torch.Generator().manual_seed(self.config.data_seed + 1)
        self._epoch, self._batch = 0, 0
        self._order = self._permutation()
        self._hold_batch()
        self.h0 = float(self.system.hamiltonian(self.xi))
        self.last = self._record(switched=False, evaluate=True)

    def _permutation(self) -> torch.Tensor:
        if self.full_batch:
            return torch.arange(self.n_train)
        return torch.randperm(self.n_train, generator=self._shuffle)

    def _hold_batch(self) -> None:
        b = self.batch_size
        idx = self._order[self._batch * b : (self._batch + 1) * b].to(self.device)
        ds = self.dataset
        if self.full_batch:
            self.system.set_batch(ds.x_train, ds.y_train)
        else:
            self.system.set_batch(ds.x_train[idx], ds.y_train[idx])

    def _next_batch(self) -> None:
        self._batch += 1
        if self._batch >= self.batches_per_epoch:
            self._batch = 0
            self._epoch += 1
            self._order = self._permutation()
        self._hold_batch()

    # ------------------------------------------------------------- gains
    def set_gains(self, **gains) -> None:
        """Change gains (damping, inertia, potential_gain, weight_decay).

        They are checked now and take effect at the start of the next interval, so a
        running thread can be told without a reset.
        """
        self.system.resolve_gains(**gains)  # raises on bad values, changes nothing
        with self._pending_lock:
            self._pending.update({k: v for k, v in gains.items() if v is not None})

    def _apply_pending_gains(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if pending:
            self.system.set_gains(**pending)
            for k, v in pending.items():
                if isinstance(v, (int, float)):
                    setattr(self.config, k, float(v))

    # ------------------------------------------------------------- stepping
    def step(self) -> Record:
        """Integrate one switching interval."""
        return self.advance(1)[0]

    def advance(self, n: int = 1, progress: Callable[[float], None] | None = None):
        """Integrate ``n`` switching intervals; one record each.

        Full batch: one solve across all ``n`` intervals. On a divergence or a solver
        failure a ``TrainingError`` is raised and the state stays at the last finite
        record (for a multi-interval solve, the intervals before the failure are kept).
        """
        if n < 1:
            return []
        self._apply_pending_gains()
        if self.full_batch:
            try:
                return self._solve(n, switch=False, progress=progress)
            except TrainingError:
                if n == 1:
                    raise
            # replay one interval at a time to keep the ones before the failure
        records = []
        try:
            for _ in range(n):
                switch = self.interval > 0 and not self.full_batch
                records.extend(self._solve(1, switch=switch, progress=progress))
        except TrainingError as err:
            err.records = records
            raise
        return records

    def run(self, horizon: float | None = None, progress: Callable[[float], None] | None = None):
        """Integrate until t reaches ``horizon`` (default: config.horizon)."""
        horizon = self.config.horizon if horizon is None else horizon
        n = max(0, round((horizon - self.t) / self.config.switching_interval))
        if self.full_batch:
            return self.advance(n, progress)
        records = []
        for _ in range(n):
            records.extend(self.advance(1, progress))
        return records

    def _solve(self, n: int, *, switch: bool, progress) -> list[Record]:
        cfg, system = self.config, self.system
        started, nfe_start = time.perf_counter(), system.nfe
        if switch:
            h_before = float(system.hamiltonian(self.xi))
            self._next_batch()
            self.switch_jumps += float(system.hamiltonian(self.xi)) - h_before
        dt, t0 = cfg.switching_interval, self.t
        ts = torch.tensor([t0 + k * dt for k in range(n + 1)], dtype=self.dtype, device=self.device)
        y0 = torch.cat([self.xi, self.xi.new_zeros(2)])
        field_fn = system.ledger_field
        if progress is not None:

            def field_fn(t, y):
                progress(float(t))
                return system.ledger_field(t, y)

        try:
            with torch.no_grad():
                ys = odeint(field_fn, y0, ts, method=cfg.solver, **self._solver_options(n))
        except (AssertionError, RuntimeError) as err:
            raise self._failure(err) from err
        if not bool(torch.isfinite(ys).all()):
            raise self._failure(None)
        records = []
        base_dissipated, base_supplied, base_wall = self.dissipated, self.supplied, self.wall
        elapsed = time.perf_counter() - started
        nfe_end = system.nfe
        for k in range(1, n + 1):
            y = ys[k]
            xi = y[:-2]
            with torch.no_grad():
                batch_loss = system.loss(xi[: system.dim])
            energy = system.energy(xi, batch_loss)
            if not math.isfinite(float(energy.total)):
                raise self._failure(None)  # finite state, but its energy overflows
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
            records.append(self.last)
        return records

    def _solver_options(self, n_intervals: int) -> dict:
        cfg = self.config
        if cfg.solver in ADAPTIVE_SOLVERS:  # max_steps is per interval, the solve spans n
            steps = cfg.max_steps * n_intervals
            return dict(rtol=cfg.rtol, atol=cfg.atol, options=dict(max_num_steps=steps))
        return dict(options=dict(step_size=cfg.step_size))

    def _failure(self, err: Exception | None) -> TrainingError:
        cfg = self.config
        gains = (
            f"damping={cfg.damping:g}, inertia={cfg.inertia:g}, "
            f"potential gain={cfg.potential_gain:g}, weight decay={cfg.weight_decay:g}, "
            f"Δt={cfg.switching_interval:g}, solver={cfg.solver}"
        )
        when = f"t = {self.t:.4g} (interval {self.interval}, epoch {self._epoch})"
        if err is None or "non-finite" in str(err) or "nan" in str(err).lower():
            return TrainingError(
                f"Training diverged after {when}: the state became NaN or infinite "
                f"with {gains}. The last finite state is kept. Try more damping, a smaller "
                "potential gain or larger inertia, a smaller step or switching interval, "
                "or the adaptive solver dopri5.",
                t=self.t,
                kind="diverged",
            )
        if cfg.solver in ADAPTIVE_SOLVERS:
            hint = (
                f"The solver {cfg.solver} could not keep rtol={cfg.rtol:g}, atol={cfg.atol:g} "
                f"within {cfg.max_steps} steps"
            )
        else:
            hint = f"The solver {cfg.solver} failed ({err})"
        return TrainingError(
            f"{hint} after {when}, with {gains}. The last good state is kept. Try looser "
            "tolerances, a smaller potential gain or more inertia (a less stiff system), "
            "or a fixed-step solver with a small step.",
            t=self.t,
            kind="solver",
        )

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
        p_sample = p[torch.as_tensor(self.tracked, device=p.device)].to("cpu", torch.float32)
        return Record(
            t=self.t,
            interval=self.interval,
            epoch=self._epoch_count(),
            batch=self._batch,
            switched=switched,
            hamiltonian=h,
            kinetic=float(energy.kinetic),
            potential=float(energy.potential),
            dissipated=self.dissipated,
            supplied=self.supplied,
            switch_jumps=self.switch_jumps,
            ledger_residual=h - self.h0 + self.dissipated - self.supplied - self.switch_jumps,
            momentum_norm=float(p.norm()),
            nfe=system.nfe,
            wall=self.wall,
            theta_sample=theta_cpu[self.tracked],
            p_sample=p_sample.numpy().copy(),
            theta=theta_cpu,
            **metrics,
        )

    def _epoch_count(self) -> float:
        """Passes over the training set; in full batch each interval is one pass."""
        if self.full_batch or self.interval == 0:
            return float(self.interval)
        return self._epoch + (self._batch + 1) / self.batches_per_epoch

    @torch.no_grad()
    def _train_loss(self, theta: torch.Tensor) -> float:
        ds = self.dataset
        return float(ds.loss_fn(self.system.forward(theta, ds.x_train), ds.y_train))

    def summary(self) -> dict:
        """The run's outcome as plain numbers (the JSON of DESIGN §3)."""
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


class BackgroundRun:
    """A ``Trainer`` in a daemon thread: play, pause, single steps, reset, stop.

    Records are appended to a lock-protected list that a consumer empties with
    ``drain()``. The worker integrates chunks of about ``chunk_seconds`` so that a
    pause, a reset or a gain change is acted on within one chunk. ``max_rate`` caps
    the speed in switching intervals per second (``None``: as fast as possible).
    """

    def __init__(self, trainer: Trainer, *, chunk_seconds: float = 0.05, max_rate=None):
        self.trainer = trainer
        self.chunk_seconds = chunk_seconds
        self.max_rate = max_rate
        self.error: TrainingError | None = None
        self._records: list[Record] = []
        self._lock = threading.Lock()  # guards _records and error
        self._work = threading.Lock()  # held while the trainer integrates
        self._playing = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._steps_requested = 0
        self._per_interval = 0.01  # wall seconds per interval, learned as it runs
        self._thread = threading.Thread(target=self._loop, name="phviz-training", daemon=True)
        self._thread.start()

    @property
    def playing(self) -> bool:
        return self._playing.is_set()

    def play(self) -> None:
        with self._lock:
            self.error = None
        self._playing.set()
        self._wake.set()

    def pause(self) -> None:
        self._playing.clear()

    def step(self, n: int = 1) -> None:
        """Integrate ``n`` intervals, then stay paused."""
        self._playing.clear()
        with self._lock:
            self._steps_requested += n
        self._wake.set()

    def reset(self) -> Record:
        """Pause, wait for the chunk in flight, go back to t = 0; returns the first record."""
        self.pause()
        with self._work:
            self.trainer.reset()
            with self._lock:
                self._records.clear()
                self._steps_requested = 0
                self.error = None
            return self.trainer.last

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._playing.clear()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def drain(self) -> list[Record]:
        with self._lock:
            records, self._records = self._records, []
        return records

    def _chunk_size(self) -> int:
        if not self.trainer.full_batch:
            return 1
        n = min(200, self.chunk_seconds / self._per_interval)
        if self.max_rate:  # a capped run sleeps after each chunk: keep chunks short
            n = min(n, self.max_rate * self.chunk_seconds)
        return int(max(1, n))

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                stepping = self._steps_requested > 0
            if not (self._playing.is_set() or stepping):
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            n = 1 if stepping else self._chunk_size()
            started = time.perf_counter()
            try:
                with self._work:
                    records = self.trainer.advance(n)
            except TrainingError as err:
                self._playing.clear()
                with self._lock:
                    self._records.extend(err.records)
                    self.error = err
                    self._steps_requested = 0
                continue
            except Exception as err:  # never let the thread die silently
                self._playing.clear()
                with self._lock:
                    self.error = TrainingError(
                        f"Training stopped: {err}", t=self.trainer.t, kind="solver"
                    )
                    self._steps_requested = 0
                continue
            took = time.perf_counter() - started
            self._per_interval = 0.7 * self._per_interval + 0.3 * took / max(1, len(records))
            with self._lock:
                self._records.extend(records)
                if stepping:
                    self._steps_requested = max(0, self._steps_requested - 1)
            if self.max_rate:
                time.sleep(max(0.0, len(records) / self.max_rate - took))
