"""One explorer session's run, without GUI code: settings → slices of work → history.

``LiveSession`` is the session's ``Job`` on the process's ``Scheduler``: its slices
build the trainer, integrate a few switching intervals, or make one picture, and
only they touch the trainer and the pictures. The server's thread owns the
settings a user edits (a ``TrainingConfig``), the bounded ``History`` the plots
read and the one notice the banner shows; it talks to the slices through requests
and reads what they produce through ``poll``. Every user error and every training
failure ends up in ``notice`` as plain words; nothing here raises into the page.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..budget import Budget
from ..config import MAX_TRACKED, TrainingConfig, make_config
from ..data import Dataset
from ..scheduler import NOW, Job, Scheduler
from ..training import Record, Trainer, TrainingError
from ..training.run import dataset_for
from .history import History, Update
from .runlog import RunLog
from .worker import Pictures

# Tracked coordinates drawn (the plots' columns stay the same whatever the model).
TRACKED_COLUMNS = MAX_TRACKED
# Changes the running trainer takes at its next switching interval.
GAINS = ("damping", "inertia", "potential_gain", "weight_decay")
SOLVER_SETTINGS = (
    "solver",
    "rtol",
    "atol",
    "step_size",
    "max_steps",
    "step_control",
    "switching_interval",
)
# Settings of the generated data set: they wait while the run trains on the user's own.
DATA_SETTINGS = ("n_samples", "noise", "train_fraction", "data_seed")
# Changes that need a new data set or model, hence a reset.
REBUILD = (
    "dataset",
    "n_samples",
    "noise",
    "train_fraction",
    "data_seed",
    "architecture",
    "hidden",
    "activation",
    "softplus_beta",
    "model_seed",
    "batch_size",
    "device",
    "dtype",
    "n_tracked",
)


@dataclass
class Notice:
    """The banner's one message: ``kind`` is 'info', 'warning' or 'danger'."""

    text: str
    kind: str = "info"


@dataclass
class Tick:
    """What one poll brought."""

    update: Update | None  # new history rows (None before the first build)
    records: list[Record]  # every record produced since the last poll
    reset: bool  # the run restarted or was re-tracked: plots take the history whole
    rebuilt: bool  # a new trainer (data or model): figures that depend on them are new


@dataclass
class _Built:
    """The slices made a new trainer (``rebuilt``) or went back to t = 0."""

    trainer: Trainer
    pictures: Pictures
    rebuilt: bool
    reason: str | None


@dataclass
class _Retracked:
    tracked: np.ndarray


class LiveSession(Job):
    """Settings, slices of training and pictures, and their history, for one tab.

    The history keeps ``capacity`` rows, evenly thinned: the browser redraws every row
    of every curve on each update (22 curves), and its time per update grows with the
    rows; 401 rows are still about one a pixel on the plots.
    """

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        capacity: int = 401,
        max_rate: float | None = 40.0,
        stop_at_horizon: bool = True,
        scheduler: Scheduler | None = None,
        budget: Budget | None = None,
        plane: str = "pca",
        coordinates: tuple[int, int] = (0, 1),
        chunk_seconds: float = 0.05,
    ):
        self.config = config if config is not None else make_config("default")
        self.capacity = capacity
        self.max_rate = max_rate
        self.stop_at_horizon = stop_at_horizon
        self.chunk_seconds = chunk_seconds
        self.scheduler = scheduler if scheduler is not None else Scheduler.shared()
        self.budget = budget if budget is not None else Budget()
        self.notice: Notice | None = None
        self.error: TrainingError | None = None  # the last training failure
        self.data: Dataset | None = None  # the user's own data, in place of config.dataset
        self.latest_eval: dict = {}
        # Owned by the slices; the server's thread reads what they publish.
        self.trainer: Trainer | None = None
        self.pictures: Pictures | None = None
        self._plane = (plane, tuple(coordinates))
        self._per_interval = 0.01  # wall seconds per interval, learned as it runs
        self._horizon_passed = False
        # Owned by the server's thread.
        self.history: History | None = None
        self.run_log = RunLog()  # the run's records, for export
        self._rate = collections.deque(maxlen=32)  # (wall clock, interval)
        # Shared, under the lock: requests to the slices, and what they produced.
        self._lock = threading.Lock()
        self._requests: collections.deque[Callable[[], None]] = collections.deque()
        self._outbox: list = []
        self._steps = 0
        self._on_settled: Callable[[], None] | None = None
        self._playing = False
        self._visible = True
        self._closed = False
        self._next_at = 0.0
        values = self.config.values()
        self.request(lambda: self._build(values, None, first=True))
        self.scheduler.add(self)

    # ------------------------------------------------------------ the server's side
    @property
    def ready(self) -> bool:
        """A trainer was built and its first record has been polled."""
        return self.history is not None

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def device(self) -> str:
        trainer = self.trainer
        return str(trainer.device) if trainer is not None else "…"

    def request(self, action: Callable[[], None]) -> None:
        """Run ``action`` in the session's next slice, ahead of other work."""
        with self._lock:
            self._requests.append(action)
        self.scheduler.notify()

    def play(self) -> None:
        """Run; the banner's last message (an error, the horizon, a rebuild) is done with."""
        self.notice = None
        self.error = None
        self._next_at = time.monotonic()
        self._on_settled = None  # a pause not yet settled is over
        self._playing = True
        self.scheduler.notify()

    def pause(self, then: Callable[[], None] | None = None) -> None:
        """Stop after the slice in flight; ``settled`` tells when that has ended (at
        once when no slice of this run is in flight or waiting), and ``then`` is called
        on the worker at that moment, unless it was so at once."""
        self._playing = False
        with self.scheduler.holding(self) as idle:
            if idle and not (self._requests or self._steps):
                self._settle()  # no slice can start meanwhile: the pictures are ours
                return
            # after the slice in flight: then all stands still (asked for while no
            # slice can end, so ``settled`` cannot turn true before it is asked)
            with self._lock:
                self._requests.append(self._settle)
            self._on_settled = then
        self.scheduler.notify()

    def ended(self) -> None:
        then = self._on_settled
        if then is not None and self.settled:
            self._on_settled = None
            then()

    @property
    def settled(self) -> bool:
        """Paused, and no slice runs or waits: every record there will be until
        ``play`` is in the outbox, and the pictures stand still."""
        return not (self._playing or self._requests or self.scheduler.running(self))

    def step(self, n: int = 1) -> None:
        """Integrate ``n`` intervals, then stay paused."""
        self._playing = False
        with self._lock:
            self._steps += n
        self.scheduler.notify()

    def reset(self) -> None:
        """Pause and go back to t = 0 (in the next slice)."""
        self._playing = False
        self.request(self._reset)
        self.notice = None

    def kick(self, energy: float, direction: str = "momentum") -> None:
        """Put ``energy`` into the momenta in the next slice, paused or running."""
        self.request(lambda: self._kick(energy, direction))

    def set_speed(self, max_rate: float | None) -> None:
        """Cap in switching intervals per second (None: as fast as the machine goes)."""
        if max_rate is not None and not max_rate > 0:
            raise ValueError(f"Invalid speed: {max_rate!r} (must be > 0, or None for no cap)")
        self.max_rate = max_rate
        self._next_at = time.monotonic()
        self.scheduler.notify()

    def set_visible(self, visible: bool) -> None:
        """A hidden tab's run waits (its work would be drawn by nobody)."""
        self._visible = bool(visible)
        self.scheduler.notify()

    def set_tracked(self, seed: int) -> None:
        """A new sample of tracked coordinates (θ history is kept, p starts now)."""
        self.request(lambda: self._retrack(seed))

    def set_plane(self, kind: str, coordinates: tuple[int, int], path: list) -> None:
        """A new landscape plane; ``path`` (points with ``.t`` and ``.theta``) is the
        stored path to draw on it."""
        self._plane = (kind, tuple(coordinates))
        self.request(lambda: self._new_plane(path))

    def request_phase(self, index: int, q_extent, p_extent) -> None:
        pictures = self.pictures
        if pictures is not None:
            pictures.request_phase(index, q_extent, p_extent)
            self.scheduler.notify()

    def apply(self, **changes) -> None:
        """Settings changed in the sidebar: gains and solver settings go to the running
        trainer; data and model settings build a new one (and say so)."""
        gains = {k: v for k, v in changes.items() if k in GAINS}
        live = {k: v for k, v in changes.items() if k in SOLVER_SETTINGS}
        structural = [k for k in changes if k in REBUILD]
        try:
            self.config.param.update(**changes)
        except (ValueError, TypeError) as err:
            self.notice = Notice(f"{err}", "danger")
            return
        if "dataset" in changes:  # a named data set again, in place of the user's own
            self.data = None
        if self.data is not None:
            waiting = [k for k in structural if k in DATA_SETTINGS]
            structural = [k for k in structural if k not in DATA_SETTINGS]
            if waiting and not structural:
                what = ", ".join(_label(k) for k in waiting)
                name = self.config.dataset
                self.notice = Notice(
                    f"Changed {what} of the '{name}' data set: the run goes on with "
                    f"{self.data.name} (Back to {name} uses it).",
                    "info",
                )
                return
        if structural:
            what = ", ".join(_label(k) for k in structural)
            reason = f"Changed {what}: a new model was built and the run restarted at t = 0."
            self.rebuild(reason)
            return
        trainer = self.trainer
        if trainer is None:  # the first build reads the settings anyway
            return
        if gains:
            try:
                trainer.set_gains(**gains)
            except (ValueError, TypeError) as err:
                self.notice = Notice(f"{err}", "danger")
                return
            self.request(lambda: self.pictures.refresh())
        for key, value in live.items():
            setattr(trainer.config, key, value)

    def rebuild(self, reason: str | None = None) -> None:
        """A new trainer from the current settings (in the next slice); on bad settings
        the old one stays and the notice says why."""
        values, data = self.config.values(), self.data
        self.request(lambda: self._build(values, reason, data))

    def use_data(self, dataset: Dataset | None, reason: str | None = None) -> None:
        """Train on ``dataset`` (None: the named data set of the settings again) from
        now on, with a new model. The budget is checked here, so a data set or model
        too large for the server raises ``ValueError`` and the old run stays."""
        if dataset is not None:
            c = self.config
            self.budget.check_data(len(dataset.x_train) + len(dataset.x_test))
            self.budget.check_model(c.architecture, c.hidden, dataset.input_dim, dataset.output_dim)
        self.data = dataset
        self.rebuild(reason)

    def close(self) -> None:
        """Stop this session's work and forget it (a closed tab)."""
        self._closed = True
        self._playing = False
        self.scheduler.remove(self)

    def poll(self) -> Tick:
        """Take what the slices produced: records into the history, notices, errors."""
        with self._lock:
            items, self._outbox = self._outbox, []
        reset = rebuilt = False
        records: list[Record] = []
        pending: list[Record] = []
        for item in items:
            if isinstance(item, Record):
                pending.append(item)
                records.append(item)
                self.run_log.extend([item])
            elif isinstance(item, _Built):
                pending, records = [], []
                self._adopt(item)
                reset = True
                rebuilt |= item.rebuilt
            elif isinstance(item, _Retracked) and self.history is not None:
                self.history.extend(pending)
                pending = []
                self.history.retrack(item.tracked)
                self.run_log.retracked()
                reset = True
            elif isinstance(item, TrainingError):
                self.error = item
                self.notice = Notice(f"{item}", "danger")
            elif isinstance(item, Notice):
                self.notice = item
        if self.history is None:
            return Tick(None, [], False, False)
        update = self.history.extend(pending)
        if records:
            self._rate.append((time.monotonic(), records[-1].interval))
            self._note_eval(records)
        return Tick(update, records, reset, rebuilt)

    def _adopt(self, built: _Built) -> None:
        trainer = built.trainer
        rows = self.budget.history_rows(trainer.system.dim, self.capacity)
        if self.history is None or self.history.dim != trainer.system.dim:
            self.history = History(trainer.system.dim, TRACKED_COLUMNS, rows)
        self.history.clear()
        self.history.extend([trainer.last])
        self.run_log = RunLog(rows)
        self.run_log.clear(trainer.tracked)
        self.run_log.extend([trainer.last])
        self._rate.clear()
        self.latest_eval = {}
        self._note_eval([trainer.last])
        if built.reason is not None:
            self.notice = Notice(built.reason, "info")

    def _note_eval(self, records: list[Record]) -> None:
        for record in reversed(records):
            if not math.isnan(record.test_loss) or not math.isnan(record.train_accuracy):
                self.latest_eval = {
                    "test_loss": record.test_loss,
                    "accuracy": record.accuracy,
                    "train_accuracy": record.train_accuracy,
                }
                return

    def steps_per_second(self) -> float:
        """Switching intervals per wall-clock second over the last few polls."""
        if not self.playing:
            return 0.0
        if len(self._rate) < 2:
            return math.nan
        (t0, i0), (t1, i1) = self._rate[0], self._rate[-1]
        if time.monotonic() - t1 > 1.0 or t1 <= t0:
            return math.nan
        return (i1 - i0) / (t1 - t0)

    def status(self) -> dict | None:
        """The status line's numbers (None before the first build)."""
        if self.history is None:
            return None
        last = self.history.last
        return {
            "t": last.t,
            "epoch": last.epoch,
            "train_loss": last.train_loss,
            "test_loss": self.latest_eval.get("test_loss", math.nan),
            "accuracy": self.latest_eval.get("accuracy", math.nan),
            "train_accuracy": self.latest_eval.get("train_accuracy", math.nan),
            "hamiltonian": last.hamiltonian,
            "nfe": last.nfe,
            "steps_per_second": self.steps_per_second(),
            "device": self.device,
        }

    # ------------------------------------------------------------ the slices' side
    def due(self) -> float:
        if self._closed:
            return math.inf
        if self._requests or self._steps:
            return NOW
        if self.trainer is None or self.pictures is None or not self._visible:
            return math.inf
        due = self.pictures.due(self._playing)
        return min(due, self._next_at) if self._playing else due

    def work(self) -> None:
        with self._lock:
            requests, self._requests = list(self._requests), collections.deque()
        if requests:
            for action in requests:
                try:
                    action()
                except Exception as err:  # never a traceback in the page
                    self._post(Notice(f"That did not work: {err}", "danger"))
            return
        if self.trainer is None:
            return
        now = time.monotonic()
        self.pictures.set_load(self.scheduler.load())
        if self._steps:  # a user's click goes first
            self._train(now)
        elif self._playing and self.trainer.pending_gains:  # so do new gains
            self._train(now)
        elif self.pictures.due(self._playing) <= now:
            self.pictures.turn()
        elif self._playing and self._next_at <= now:
            self._train(now)

    def _post(self, *items) -> None:
        with self._lock:
            self._outbox.extend(items)

    def _train(self, now: float) -> None:
        trainer = self.trainer
        stepping = self._steps > 0
        n = 1 if stepping else self._chunk_size()
        started = time.perf_counter()
        try:
            records = trainer.advance(n)
        except TrainingError as err:
            self._stopped(err.records, err)
            return
        except Exception as err:  # out of memory, or a bug: said, never silent
            kind = "out of memory" if "out of memory" in str(err).lower() else "error"
            failure = TrainingError(f"Training stopped ({kind}): {err}", t=trainer.t, kind=kind)
            self._stopped([], failure)
            return
        took = time.perf_counter() - started
        self._per_interval = 0.7 * self._per_interval + 0.3 * took / max(1, len(records))
        if stepping:
            with self._lock:
                self._steps = max(0, self._steps - len(records))
        self.pictures.track(records)
        self._post(*records)
        horizon = trainer.config.horizon
        if self.stop_at_horizon and not self._horizon_passed and 0 < horizon <= trainer.t + 1e-9:
            self._horizon_passed = True
            self._playing = False
            self.pictures.settle()
            text = f"Reached the horizon T = {horizon:g}. Press Run to go on, or Reset."
            self._post(Notice(text))
        if self.max_rate:
            self._next_at = max(self._next_at, now) + len(records) / self.max_rate

    def _stopped(self, records: list[Record], error: TrainingError) -> None:
        self._playing = False
        with self._lock:
            self._steps = 0
        self.pictures.track(records)
        self.pictures.settle()
        self._post(*records, error)

    def _chunk_size(self) -> int:
        """Intervals in one slice: about ``chunk_seconds`` of work, fewer under a cap."""
        n = min(200, self.chunk_seconds / self._per_interval)
        if self.max_rate:
            n = min(n, self.max_rate * self.chunk_seconds)
        return int(max(1, n))

    def _settle(self) -> None:
        if self.pictures is not None:
            self.pictures.settle()

    def _build(self, values: dict, reason: str | None, data=None, *, first=False) -> None:
        try:
            trainer = self._new_trainer(values, data)
        except (ValueError, TypeError) as err:
            if not first:
                self._post(Notice(f"{err}. The previous model is kept.", "danger"))
                return
            trainer = self._new_trainer(make_config("default").values())
            reason = f"{err}. The default set-up is shown instead."
        self._start(trainer, self._new_pictures(trainer), rebuilt=True, reason=reason)

    def _new_trainer(self, values: dict, data: Dataset | None = None) -> Trainer:
        config = make_config(**values)
        if data is None:
            self.budget.check_data(config.n_samples)
        dataset = dataset_for(config) if data is None else data
        self.budget.check_model(
            config.architecture, config.hidden, dataset.input_dim, dataset.output_dim
        )
        return Trainer(config, dataset=dataset)

    def _new_pictures(self, trainer: Trainer) -> Pictures:
        kind, (x, y) = self._plane
        dim = trainer.system.dim
        coordinates = (min(x, dim - 1), min(y, dim - 1))
        if coordinates[0] == coordinates[1]:
            coordinates = (coordinates[0], (coordinates[0] + 1) % dim)
        widths = [p.shape[0] for p in trainer.model.parameters() if p.dim() == 1] or [1]
        chunk = self.budget.chunk_points(dim, len(trainer.dataset.x_train), widths)
        return Pictures(
            trainer,
            plane=kind,
            coordinates=coordinates,
            resolution=self.budget.resolution(41),
            chunk_size=chunk,
        )

    def _start(self, trainer: Trainer, pictures: Pictures, *, rebuilt: bool, reason) -> None:
        # One step for ``poll``: whoever sees the new trainer and then polls adopts it.
        with self._lock:
            self._steps = 0
            self._outbox.clear()  # records of the old run are not drawn any more
            self.trainer, self.pictures = trainer, pictures
            self._horizon_passed = False
            self._outbox.append(_Built(trainer, pictures, rebuilt, reason))

    def _reset(self) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        trainer.reset()
        self._start(trainer, self._new_pictures(trainer), rebuilt=False, reason=None)

    def _kick(self, energy: float, direction: str) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        try:
            booked = trainer.kick(energy, direction)
        except ValueError as err:
            self._post(Notice(f"{err}", "danger"))
            return
        last = self.trainer.last
        self.pictures.track([last])
        how = "along p" if direction == "momentum" else "in a random direction"
        text = (
            f"Kicked: +ΔE = {booked:.4g} into the momenta ({how}) at t = {last.t:g}: "
            f"H is now {last.hamiltonian:.4g}, supplied energy {last.supplied:.4g}."
        )
        self._post(last, Notice(text))

    def _retrack(self, seed: int) -> None:
        trainer = self.trainer
        n, k = trainer.system.dim, len(trainer.tracked)
        tracked = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
        trainer.tracked = tracked
        self._post(_Retracked(tracked))

    def _new_plane(self, path: list) -> None:
        if self.trainer is None:
            return
        pictures = self._new_pictures(self.trainer)
        last = self.trainer.last
        pictures.track([point for point in path if point.t < last.t] + [last])
        self.pictures = pictures


def _label(name: str) -> str:
    """A setting's name in a sentence: its sidebar label, lower case, without units."""
    label = TrainingConfig.param[name].label
    return label.split(" (")[0].lower()
