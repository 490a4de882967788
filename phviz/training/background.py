"""``BackgroundRun``: a ``Trainer`` in a thread, with play, pause and single steps."""

from __future__ import annotations

import threading
import time

from .records import Record, TrainingError
from .trainer import Trainer


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
