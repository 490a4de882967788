"""One explorer session as a job on the worker pool: commands in, snapshots out.

``LiveSession`` is the session's ``Job`` on the process's ``Scheduler``. Its slices
own the trainer and the pictures (``SessionSlices``); the server's thread never
touches them. It sends commands (gains, solver settings, a new sample, a plane, a
kick, pause, step) that the next slice carries out, and reads what the slices
publish: records, notices and ``RunInfo`` through ``poll``, the pictures as one
``Shown``. The server's thread owns the settings a user edits (a ``TrainingConfig``),
the bounded ``History`` the plots read and the one notice the banner shows. Every
user error and every training failure ends up in ``notice`` as plain words; nothing
here raises into the page.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

from ..budget import Budget
from ..config import TrainingConfig, make_config
from ..data import Dataset
from ..scheduler import NOW, Job, Scheduler
from ..training.trainer import LIVE_SETTINGS
from .intake import TRACKED_COLUMNS, PolledRun, Tick
from .picturejob import Shown
from .slices import Notice, RunInfo, SessionSlices

__all__ = ["TRACKED_COLUMNS", "LiveSession", "Notice", "RunInfo", "Tick"]

# Changes the running trainer takes at its next switching interval.
GAINS = ("damping", "inertia", "potential_gain", "weight_decay")
SOLVER_SETTINGS = LIVE_SETTINGS  # the solver's settings, taken as the gains are
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


class LiveSession(PolledRun, Job):
    """Settings, slices of training and pictures, and their history, for one tab."""

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
        super().__init__(budget if budget is not None else Budget(), capacity)
        self.config = config if config is not None else make_config("default")
        self.max_rate = max_rate
        self.chunk_seconds = chunk_seconds
        self.scheduler = scheduler if scheduler is not None else Scheduler.shared()
        self.data: Dataset | None = None  # the user's own data, in place of config.dataset
        # Published by the slices (swapped in whole): what the pictures show.
        self.shown: Shown | None = None
        # Shared, under the lock: commands to the slices, and what they produced.
        self._lock = threading.Lock()
        self._requests: collections.deque[Callable[[SessionSlices], None]] = collections.deque()
        self._outbox: list = []
        self._steps = 0
        self._phase_wanted: tuple | None = None  # the phase portrait asked for last
        self._phase_taken: tuple | None = None  # ... and the one the pictures have
        self._on_settled: Callable[[], None] | None = None
        self._settle = False  # the pictures stand still from the next slice on
        self._playing = False
        self._visible = True
        self._closed = False
        self._next_at = 0.0
        # Owned by the slices.
        self._slices = SessionSlices(
            self._post,
            self.budget,
            plane=(plane, tuple(coordinates)),
            stop_at_horizon=stop_at_horizon,
        )
        values = self.config.values()
        self.request(lambda s: s.build(values, None, first=True))
        self.scheduler.add(self)

    # ------------------------------------------------------------ reading
    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def settled(self) -> bool:
        """Paused, and no slice runs or waits: every record there will be until
        ``play`` is in the outbox, and the pictures stand still."""
        return not (self._playing or self._requests or self.scheduler.running(self))

    # ------------------------------------------------------------ commands
    def request(self, action: Callable[[SessionSlices], None]) -> None:
        """Run ``action(slices)`` in the session's next slice, ahead of other work."""
        with self._lock:
            self._requests.append(action)
        self.scheduler.notify()

    def with_trainer(self, action: Callable) -> None:
        """Run ``action(trainer)`` in the session's next slice, where the trainer may be
        read (e.g. copied for work elsewhere); nothing happens before the first build."""
        self.request(lambda s: None if s.trainer is None else action(s.trainer))

    def ask(self, question: Callable, timeout: float = 30.0):
        """``question(trainer)`` answered in the session's next slice, waiting for it
        (for tests and benchmarks: the server's thread never waits on the pool)."""
        answered, answer = threading.Event(), []

        def reply(trainer) -> None:
            try:
                answer.append(question(trainer))
            finally:
                answered.set()

        self.with_trainer(reply)
        if not answered.wait(timeout) or not answer:
            raise TimeoutError(f"The session did not answer within {timeout} s")
        return answer[0]

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
            # The pictures stand still from the next slice on; until then nothing is
            # due, as no slice can start while this block holds the pool.
            self._settle = True
            if idle and not (self._requests or self._steps):
                return
            # asked for while no slice can end, so ``settled`` cannot turn true first
            self._on_settled = then
        self.scheduler.notify()

    def step(self, n: int = 1) -> None:
        """Integrate ``n`` intervals, then stay paused."""
        self._playing = False
        with self._lock:
            self._steps += n
        self.scheduler.notify()

    def reset(self) -> None:
        """Pause and go back to t = 0 (in the next slice)."""
        self._playing = False
        self.request(lambda s: (self._forget_steps(), s.reset()))
        self.notice = None

    def kick(self, energy: float, direction: str = "momentum") -> None:
        """Put ``energy`` into the momenta in the next slice, paused or running."""
        self.request(lambda s: s.kick(energy, direction))

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
        self.request(lambda s: s.retrack(seed))

    def set_plane(self, kind: str, coordinates: tuple[int, int], path: list) -> None:
        """A new landscape plane; ``path`` (points with ``.t`` and ``.theta``) is the
        stored path to draw on it."""
        self.request(lambda s: s.new_plane(kind, tuple(coordinates), path))

    def request_phase(self, index: int, q_extent, p_extent) -> None:
        """The phase portrait wanted: coordinate ``index`` over these extents. Only the
        latest counts; a new coordinate wakes the slices at once."""
        self._phase_wanted = (int(index), tuple(q_extent), tuple(p_extent))
        taken = self._phase_taken
        if taken is None or taken[0] != index:
            self.scheduler.notify()

    def set_gains(self, **gains) -> None:
        """Gains for the running trainer, from its next interval on (a bad value: the
        banner says so)."""
        self.request(lambda s: s.set_gains(gains))

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
            self.rebuild(f"Changed {what}: a new model was built and the run restarted at t = 0.")
            return
        if gains:
            self.set_gains(**gains)
        if live:
            self.request(lambda s: s.configure(live))

    def rebuild(self, reason: str | None = None) -> None:
        """A new trainer from the current settings (in the next slice); on bad settings
        the old one stays and the notice says why."""
        values, data = self.config.values(), self.data
        self.request(lambda s: (self._forget_steps(), s.build(values, reason, data)))

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
        """Stop this session's work and let go of everything it holds (a closed tab)."""
        self._closed = True
        self._playing = False
        self.scheduler.remove(self)  # after the slice in flight, if any
        with self._lock:
            self._requests.clear()
            self._outbox.clear()
        self._slices.close()
        self._on_settled = None
        self.shown = None

    def _drain(self) -> list:
        with self._lock:
            items, self._outbox = self._outbox, []
        return items

    # ------------------------------------------------------------ the slices
    def due(self) -> float:
        if self._closed:
            return math.inf
        if self._requests or self._steps:
            return NOW
        pictures = self._slices.pictures
        if pictures is None or not self._visible:
            return math.inf
        wanted = self._phase_wanted
        if wanted is not None and (self._phase_taken is None or wanted[0] != self._phase_taken[0]):
            return NOW  # another coordinate's portrait: the user is waiting for it
        if self._settle and not self._playing:
            return math.inf  # paused: the pictures stand still
        due = pictures.due(self._playing)
        return min(due, self._next_at) if self._playing else due

    def work(self) -> None:
        with self._lock:
            requests, self._requests = list(self._requests), collections.deque()
        slices = self._slices
        try:
            if self._settle:  # paused: what the pictures show now stays
                self._settle = False
                if not self._playing and slices.pictures is not None:
                    slices.pictures.settle()
            if requests:
                for action in requests:
                    try:
                        action(slices)
                    except Exception as err:  # never a traceback in the page
                        self._post(Notice(f"That did not work: {err}", "danger"))
                return
            if slices.pictures is not None:
                self._slice(slices, time.monotonic())
        finally:
            self.shown = slices.pictures.shown if slices.pictures is not None else None

    def _slice(self, slices: SessionSlices, now: float) -> None:
        pictures = slices.pictures
        wanted = self._phase_wanted
        if wanted is not None and wanted is not self._phase_taken:
            pictures.request_phase(*wanted)
            self._phase_taken = wanted
        pictures.set_load(self.scheduler.load())
        if self._steps:  # a user's click goes first
            self._train(slices, now)
        elif self._playing and slices.trainer.pending_gains:  # so do new gains
            self._train(slices, now)
        elif pictures.due(self._playing) <= now:
            pictures.turn()
        elif self._playing and self._next_at <= now:
            self._train(slices, now)

    def _train(self, slices: SessionSlices, now: float) -> None:
        stepping = self._steps > 0
        n = 1 if stepping else slices.chunk_size(self.chunk_seconds, self.max_rate)
        done, goes_on = slices.train(n)
        if not goes_on:
            self._playing = False
            with self._lock:
                self._steps = 0
        elif stepping:
            with self._lock:
                self._steps = max(0, self._steps - done)
        if self.max_rate:
            self._next_at = max(self._next_at, now) + done / self.max_rate

    def ended(self) -> None:
        then = self._on_settled
        if then is not None and self.settled:
            self._on_settled = None
            then()

    def _forget_steps(self) -> None:
        """Steps asked for before a reset or a new model are of the old run."""
        with self._lock:
            self._steps = 0

    def _post(self, *items) -> None:
        with self._lock:
            self._outbox.extend(items)


def _label(name: str) -> str:
    """A setting's name in a sentence: its sidebar label, lower case, without units."""
    label = TrainingConfig.param[name].label
    return label.split(" (")[0].lower()
