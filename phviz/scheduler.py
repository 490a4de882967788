"""One pool of worker threads per process that runs every session's work, fairly.

A server holds many live runs (one per browser tab). Giving each its own threads
makes them fight for the interpreter and the cores: ten tabs got less done together
than one alone. Here every run is a ``Job`` with a ``due()`` time and a ``work()``
method that does one short, bounded slice (a few switching intervals, or one
picture). A fixed pool of workers, as many as there are cores, always takes the job
that is due and was served longest ago, so n busy jobs each get 1/n of the slices,
and a job that is not due (paused, hidden, capped in speed) costs nothing.

Slices of jobs take turns, one at a time, by default: a slice of a small model is
mostly Python, and one interpreter runs one thread at a time, so a second slice
beside it only takes turns at the interpreter with it and with the server's event
loop, which reads every tab's clicks: two slices at once of small models train less in
total than one at a time and keep the event loop waiting longer (``PHVIZ_SLICES``
changes it, for large models). The other workers run one-off tasks
(a gain map, an export, a page's figures) beside the slices, so a long one never
holds up the sessions. More cores serve more tabs as more server processes.

A job is never worked on by two threads at once, so whatever a job owns (its
trainer, its pictures) is only ever touched by the slice in flight: a thread that
wants a change sends it as a request, or waits with ``quiesce`` until no slice of
that job is running.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

NOW = -math.inf  # a job whose due() is NOW jumps ahead of every timed one


class Job:
    """Work that a ``Scheduler`` runs in slices; subclasses override both methods."""

    def due(self) -> float:
        """The ``time.monotonic()`` at which the next slice is wanted (``math.inf``:
        none; ``NOW``: a request waits and goes first). Called under the scheduler's
        lock: read a few attributes, never block."""
        return math.inf

    def work(self) -> None:
        """One bounded slice of work (tens of milliseconds)."""

    def ended(self) -> None:
        """Called on the worker after each slice, once the job no longer counts as
        running: where a job tells others what its slice did. Must not block."""


class Task(Job):
    """A one-off job from ``Scheduler.run_once``: due at once, runs ``fn`` in one slice,
    then leaves the pool. ``result()`` waits for it and returns or raises what ``fn`` did."""

    def __init__(self, fn: Callable[[], object]):
        self._fn = fn
        self._done = threading.Event()
        self._started = False
        self._value: object = None
        self._error: BaseException | None = None

    def due(self) -> float:
        return math.inf if self._started else NOW

    def work(self) -> None:
        self._started = True
        try:
            self._value = self._fn()
        except BaseException as err:  # handed to whoever asks for the result
            self._error = err
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``fn`` has returned or raised (False on a timeout)."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None):
        if not self._done.wait(timeout):
            raise TimeoutError(f"The task did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


class Scheduler:
    """A fixed pool of daemon threads running registered jobs round-robin."""

    _shared: Scheduler | None = None
    _shared_lock = threading.Lock()

    def __init__(
        self, workers: int | None = None, *, torch_threads: int = 1, slices_at_once: int = 1
    ):
        if workers is None:
            workers = max(
                1,
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1),
            )
        for name, value in (("workers", workers), ("slices_at_once", slices_at_once)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid {name}: {value!r} (must be a whole number >= 1)")
        # Each worker runs torch ops on one thread: the pool, not torch, uses the cores.
        torch.set_num_threads(torch_threads)
        self.workers = workers
        # Slices of registered jobs running at once, at most (one-off tasks aside).
        self.slices_at_once = min(workers, slices_at_once)
        self._cond = threading.Condition()
        self._jobs: dict[Job, int] = {}  # job → turn at which it was last served
        self._running: set[Job] = set()
        self._turn = 0
        self._closed = False
        self.slices: dict[Job, int] = {}  # slices done per job (for fairness checks)
        self._threads = [
            threading.Thread(target=self._loop, name=f"phviz-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def shared(cls) -> Scheduler:
        """The process's scheduler, created on first use, with ``PHVIZ_WORKERS``
        workers if that is set (e.g. a share of the cores under ``--num-procs``) and
        ``PHVIZ_SLICES`` slices at once (for large models, whose slices are mostly
        torch's arithmetic, outside the interpreter). The C library's memory settings
        are left as they are: the pictures' surfaces and the gain maps reuse buffers of
        their own, and memory a closed tab's session freed goes back to the system."""
        with cls._shared_lock:
            if cls._shared is None or cls._shared._closed:
                cls._shared = cls(
                    _setting("PHVIZ_WORKERS"), slices_at_once=_setting("PHVIZ_SLICES") or 1
                )
                # Workers end before the interpreter does: a thread still inside
                # torch while it shuts down aborts the process.
                atexit.register(cls._shared.close)
            return cls._shared

    # ------------------------------------------------------------ jobs
    def add(self, job: Job) -> None:
        with self._cond:
            self._jobs.setdefault(job, self._turn)
            self.slices.setdefault(job, 0)
            self._cond.notify_all()

    def remove(self, job: Job, timeout: float = 10.0) -> None:
        """Forget ``job`` after its slice in flight, if any, has ended."""
        with self._cond:
            self._jobs.pop(job, None)
            self._cond.wait_for(lambda: job not in self._running, timeout)
            self.slices.pop(job, None)

    def notify(self) -> None:
        """A job's ``due()`` may have moved earlier: look again."""
        with self._cond:
            self._cond.notify_all()

    def quiesce(self, job: Job, timeout: float = 10.0) -> bool:
        """Wait until no slice of ``job`` is running (the next may start right after,
        unless the caller first made the job not due)."""
        if threading.current_thread() in self._threads:
            return True  # called from a slice: nothing else of this job runs now
        with self._cond:
            return self._cond.wait_for(lambda: job not in self._running, timeout)

    @contextlib.contextmanager
    def holding(self, job: Job):
        """Hold the pool's lock and yield whether no slice of ``job`` runs: until the
        block ends none can start, so the caller may touch what the job owns (briefly:
        every worker waits for the lock meanwhile)."""
        with self._cond:
            yield job not in self._running

    def busy(self) -> int:
        """Jobs that want work: running, or due at some time."""
        with self._cond:
            return sum(1 for job in self._jobs if job in self._running or job.due() < math.inf)

    def load(self) -> float:
        """Jobs that want work per slice that can run at once."""
        return self.busy() / self.slices_at_once

    def running(self, job: Job) -> bool:
        """Whether a slice of ``job`` is running now."""
        with self._cond:
            return job in self._running

    def run_once(self, fn: Callable[[], object]) -> Task:
        """Run ``fn()`` once on the pool, as a job of its own that leaves the pool after
        its one slice; the returned ``Task`` holds the result or the error.

        For bulk work that is no session's live run (a gain map): it takes one worker
        while it runs and shares the pool fairly with the sessions' slices.
        """
        task = Task(fn)
        self.add(task)
        return task

    @property
    def jobs(self) -> int:
        with self._cond:
            return len(self._jobs)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers once their slices in flight have ended, waiting at most
        ``timeout`` seconds for all of them together (a process that is told to stop
        must not wait behind a long one-off task)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------ workers
    def _pick(self) -> tuple[Job | None, float]:
        """The due job served longest ago, or (None, seconds until one is due)."""
        now = time.monotonic()
        best, best_key, wait = None, None, math.inf
        slices = sum(1 for job in self._running if not isinstance(job, Task))
        for job, served in self._jobs.items():
            if job in self._running or (
                slices >= self.slices_at_once and not isinstance(job, Task)
            ):
                continue
            try:
                due = job.due()
            except Exception:  # a broken job must not stop the pool
                log.exception("job.due")
                continue
            if due <= now:
                key = (due != NOW, served)  # requests first, then round-robin
                if best_key is None or key < best_key:
                    best, best_key = job, key
            else:
                wait = min(wait, due - now)
        return best, wait

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    job, wait = self._pick()
                    if job is not None:
                        break
                    self._cond.wait(None if math.isinf(wait) else wait)
                self._running.add(job)
                self._turn += 1
                self._jobs[job] = self._turn
            try:
                job.work()
            except Exception:  # jobs report their own errors; this is the last guard
                log.exception("job.work")
            finally:
                with self._cond:
                    self._running.discard(job)
                    if isinstance(job, Task):  # one slice and it leaves the pool
                        self._jobs.pop(job, None)
                        self.slices.pop(job, None)
                    elif job in self.slices:
                        self.slices[job] += 1
                    self._cond.notify_all()
                try:
                    job.ended()
                except Exception:
                    log.exception("job.ended")


def _setting(name: str) -> int | None:
    """The whole number >= 1 in the environment variable ``name`` (None if unset)."""
    value = os.environ.get(name)
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"Invalid {name}: {value!r} (must be a whole number >= 1)")
    return number
