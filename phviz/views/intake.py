"""What the server's thread makes of what a session's slices post: the history the
plots read, the run's records for export, the banner's notice and the status line.

``PolledRun`` is the server's half of ``LiveSession``: ``poll`` takes the records,
notices and ``RunInfo`` the slices posted (``_drain``) into state that only the
server's thread reads and writes. No GUI code.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, replace

from ..budget import Budget
from ..config import MAX_TRACKED
from ..training import Record, TrainingError
from .history import History, Update
from .runlog import RunLog
from .slices import Built, Kept, Notice, Retracked, RunInfo

# Tracked coordinates drawn (the plots' columns stay the same whatever the model).
TRACKED_COLUMNS = MAX_TRACKED


@dataclass
class Tick:
    """What one poll brought."""

    update: Update | None  # new history rows (None before the first build)
    records: list[Record]  # every record produced since the last poll
    reset: bool  # the run restarted or was re-tracked: plots take the history whole
    rebuilt: bool  # a new trainer (data or model): figures that depend on them are new


class PolledRun:
    """The run as the server's thread knows it, from what the slices posted.

    The history keeps ``capacity`` rows, evenly thinned: the browser redraws every row
    of every curve on each update (22 curves), and its time per update grows with the
    rows; 401 rows are still about one a pixel on the plots.
    """

    def __init__(self, budget: Budget, capacity: int = 401):
        self.budget = budget
        self.capacity = capacity
        self.notice: Notice | None = None
        self.error: TrainingError | None = None  # the last training failure
        self.latest_eval: dict = {}
        self.run: RunInfo | None = None  # the trainer as last polled
        self.kept: Kept | None = None  # a refused build's running settings, until taken
        self.history: History | None = None
        self.run_log = RunLog()  # the run's records, for export
        self._rate = collections.deque(maxlen=32)  # (wall clock, interval)

    @property
    def ready(self) -> bool:
        """A trainer was built and its first record has been polled."""
        return self.history is not None

    @property
    def playing(self) -> bool:
        return False

    @property
    def device(self) -> str:
        return self.run.device if self.run is not None else "…"

    def _drain(self) -> list:
        """What the slices posted since the last call (``LiveSession`` provides it)."""
        return []

    def poll(self) -> Tick:
        """Take what the slices produced: records into the history, notices, errors."""
        items = self._drain()
        reset = rebuilt = False
        records: list[Record] = []
        pending: list[Record] = []
        for item in items:
            if isinstance(item, Record):
                pending.append(item)
                records.append(item)
                self.run_log.extend([item])
            elif isinstance(item, Built):
                pending, records = [], []
                self._adopt(item)
                reset = True
                rebuilt |= item.rebuilt
            elif isinstance(item, Retracked) and self.history is not None:
                self.history.extend(pending)
                pending = []
                self.history.retrack(item.tracked)
                self.run_log.retracked()
                self.run = replace(self.run, tracked=item.tracked)
                reset = True
            elif isinstance(item, TrainingError):
                self.error = item
                self.notice = Notice(f"{item}", "danger")
            elif isinstance(item, Notice):
                self.notice = item
            elif isinstance(item, Kept):
                self.kept = item
                self.notice = Notice(item.text, "warning" if item.every else "danger")
        if self.history is None:
            return Tick(None, [], False, False)
        update = self.history.extend(pending)
        if records:
            self._rate.append((time.monotonic(), records[-1].interval))
            self._note_eval(records)
        return Tick(update, records, reset, rebuilt)

    def _adopt(self, built: Built) -> None:
        info, first = built.info, built.first
        self.run = info
        rows = self.budget.history_rows(info.dim, self.capacity)
        if self.history is None or self.history.dim != info.dim:
            self.history = History(info.dim, TRACKED_COLUMNS, rows)
        self.history.clear()
        self.history.extend([first])
        self.run_log = RunLog(rows)
        self.run_log.clear(info.tracked)
        self.run_log.extend([first])
        self._rate.clear()
        self.latest_eval = {}
        self._note_eval([first])
        if built.reason is not None:
            self.notice = Notice(built.reason, "info")

    def take_kept(self) -> Kept | None:
        """The settings a refused build left running (None: none since the last call),
        for the page to show in place of those refused."""
        kept, self.kept = self.kept, None
        return kept

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
            "ledger": last.ledger_residual,
            "nfe": last.nfe,
            "steps_per_second": self.steps_per_second(),
            "device": self.device,
        }
