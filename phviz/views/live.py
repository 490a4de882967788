"""One explorer session's run, without GUI code: settings → trainer thread → history.

``LiveSession`` owns the settings a user edits (a ``TrainingConfig``), the
``BackgroundRun`` that integrates them, the bounded ``History`` the plots read,
and the one notice the banner shows. Every user error and every training failure
ends up in ``notice`` as plain words; nothing here raises into the page.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import PRESETS, TrainingConfig, make_config
from ..training import BackgroundRun, Record, Trainer
from .history import History, Update

# Tracked coordinates drawn (the plots' columns stay the same whatever the model).
TRACKED_COLUMNS = 8
# Changes the running trainer takes at its next switching interval.
GAINS = ("damping", "inertia", "potential_gain", "weight_decay")
SOLVER_SETTINGS = ("solver", "rtol", "atol", "step_size", "max_steps", "switching_interval")
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
LABELS = {
    "dataset": "data set",
    "n_samples": "size",
    "noise": "noise",
    "train_fraction": "train fraction",
    "data_seed": "data seed",
    "architecture": "architecture",
    "hidden": "hidden widths",
    "activation": "activation",
    "softplus_beta": "softplus sharpness",
    "model_seed": "model seed",
    "batch_size": "batch size",
    "device": "device",
    "dtype": "precision",
    "n_tracked": "tracked coordinates",
}


@dataclass
class Notice:
    """The banner's one message: ``kind`` is 'info', 'warning' or 'danger'."""

    text: str
    kind: str = "info"


@dataclass
class Tick:
    """What one poll brought: the history's update and how many records arrived."""

    update: Update
    records: list[Record]  # everything the thread produced since the last poll
    reset: bool  # the run restarted (rebuild or Reset): every plot starts over


class LiveSession:
    """Settings, a training thread and its history, for one browser tab."""

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        capacity: int = 2001,
        max_rate: float | None = 40.0,
        stop_at_horizon: bool = True,
    ):
        self.config = config if config is not None else make_config("default")
        self.capacity = capacity
        self.max_rate = max_rate
        self.stop_at_horizon = stop_at_horizon
        self.notice: Notice | None = None
        self.run: BackgroundRun | None = None
        self.trainer: Trainer | None = None
        self.history: History | None = None
        self._fresh = False
        self._shown_error = None
        self._rate = collections.deque(maxlen=32)  # (wall clock, interval)
        self.latest_eval: dict = {}
        if not self.rebuild():
            # The given settings cannot be built: fall back to the default run.
            notice = self.notice
            self.config = make_config("default")
            self.rebuild()
            self.notice = notice

    # ------------------------------------------------------------ building
    def rebuild(self, reason: str | None = None) -> bool:
        """A new trainer from the settings; on bad settings keep the old one and say why."""
        try:
            trainer = Trainer(make_config(**self.config.values()))
        except (ValueError, TypeError) as err:
            self.notice = Notice(f"{err}. The previous model is kept.", "danger")
            return False
        playing = self.run is not None and self.run.playing
        self.close()
        self.trainer = trainer
        self.run = BackgroundRun(trainer, max_rate=self.max_rate)
        self.history = History(trainer.system.dim, TRACKED_COLUMNS, self._capacity(trainer))
        self._restart_bookkeeping(trainer.last)
        self.notice = Notice(reason, "info") if reason else None
        if playing:
            self.run.play()
        return True

    def _capacity(self, trainer: Trainer) -> int:
        # Whole θ is kept per row: cap the history at about 64 MB for big models.
        rows = int(64e6 / (4 * max(1, trainer.system.dim)))
        rows = max(101, min(self.capacity, rows))
        return rows if rows % 2 else rows - 1

    def _restart_bookkeeping(self, first: Record) -> None:
        self.history.clear()
        self.history.extend([first])
        self._fresh = True
        self._shown_error = None
        self._rate.clear()
        self.latest_eval = {}
        self._note_eval([first])
        self._horizon_passed = False

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
        if structural:
            what = ", ".join(LABELS[k] for k in structural)
            self.rebuild(f"Changed {what}: a new model was built and the run restarted at t = 0.")
            return
        if gains:
            try:
                self.trainer.set_gains(**gains)
            except (ValueError, TypeError) as err:
                self.notice = Notice(f"{err}", "danger")
                return
        for key, value in live.items():
            setattr(self.trainer.config, key, value)

    def load_preset(self, name: str) -> None:
        if name not in PRESETS:
            self.notice = Notice(f"Unknown preset {name!r}.", "danger")
            return
        defaults = TrainingConfig()
        values = {k: getattr(defaults, k) for k in REBUILD + GAINS + SOLVER_SETTINGS}
        values.update(PRESETS[name])
        values["horizon"] = PRESETS[name].get("horizon", defaults.horizon)
        self.config.param.update(**values)
        self.rebuild(f"Loaded the preset '{name}': the run restarted at t = 0.")

    # ------------------------------------------------------------ controls
    @property
    def playing(self) -> bool:
        return self.run.playing

    @property
    def device(self) -> str:
        return str(self.trainer.device)

    def play(self) -> None:
        """Run; the banner's last message (an error, the horizon, a rebuild) is done with."""
        self._shown_error = None
        self.notice = None
        self.run.play()

    def pause(self) -> None:
        self.run.pause()

    def step(self, n: int = 1) -> None:
        self.run.step(n)

    def reset(self) -> None:
        first = self.run.reset()
        self._restart_bookkeeping(first)
        self.notice = None

    def set_speed(self, max_rate: float | None) -> None:
        """Cap in switching intervals per second (None: as fast as the machine goes)."""
        if max_rate is not None and not max_rate > 0:
            raise ValueError(f"Invalid speed: {max_rate!r} (must be > 0, or None for no cap)")
        self.max_rate = max_rate
        self.run.max_rate = max_rate

    def set_tracked(self, seed: int) -> None:
        """A new sample of tracked coordinates (θ history is kept, p starts now)."""
        trainer = self.trainer
        n = trainer.system.dim
        k = len(trainer.tracked)
        tracked = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
        trainer.tracked = tracked
        self.history.retrack(tracked)
        self._fresh = True

    def close(self) -> None:
        if self.run is not None:
            self.run.stop()

    # ------------------------------------------------------------ polling
    def poll(self) -> Tick:
        """Drain the thread's records into the history; notice errors and the horizon."""
        records = self.run.drain()
        reset, self._fresh = self._fresh, False
        update = self.history.extend(records)
        if records:
            self._rate.append((time.monotonic(), records[-1].interval))
            self._note_eval(records)
        error = self.run.error
        if error is not None and error is not self._shown_error:
            self._shown_error = error
            self.notice = Notice(f"{error}", "danger")
        horizon = self.trainer.config.horizon
        if (
            self.stop_at_horizon
            and not self._horizon_passed
            and horizon > 0
            and self.history.last.t >= horizon - 1e-9
        ):
            self._horizon_passed = True
            self.run.pause()
            self.notice = Notice(
                f"Reached the horizon T = {horizon:g}. Press Run to go on, or Reset.", "info"
            )
        return Tick(update, records, reset)

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
        if len(self._rate) < 2:
            return math.nan
        (t0, i0), (t1, i1) = self._rate[0], self._rate[-1]
        if not self.playing:
            return 0.0
        if time.monotonic() - t1 > 1.0 or t1 <= t0:
            return math.nan
        return (i1 - i0) / (t1 - t0)

    def status(self) -> dict:
        """The status line's numbers."""
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


def training_threads(n: int = 1) -> None:
    """Keep torch to ``n`` threads so the server's own thread stays responsive."""
    torch.set_num_threads(n)
