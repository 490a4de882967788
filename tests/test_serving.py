"""Serving many sessions: the shared worker pool, Pause, budgets and the session limit."""

import math
import threading
import time

import pytest
from waiting import wait_for

from phviz import Trainer, make_config
from phviz.budget import Budget, parameter_count
from phviz.scheduler import NOW, Job, Scheduler
from phviz.views import Explorer
from phviz.views.layout import SparePlots
from phviz.views.live import LiveSession
from phviz.views.picturejob import Pictures
from phviz.views.serving import SessionGate


class Busy(Job):
    """Always due; each slice takes about ``seconds`` and is counted."""

    def __init__(self, seconds=0.002, due=-1.0):
        self.seconds, self.when, self.done = seconds, due, 0

    def due(self):
        return self.when

    def work(self):
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        self.done += 1


@pytest.fixture
def pool():
    scheduler = Scheduler(workers=1)
    yield scheduler
    scheduler.close()


def test_busy_jobs_get_equal_shares_and_idle_ones_none(pool):
    a, b, idle = Busy(), Busy(), Busy(due=math.inf)
    for job in (a, b, idle):
        pool.add(job)
    assert wait_for(lambda: a.done + b.done >= 200)
    pool.close()  # the workers stop: the counts stand still to be compared
    assert abs(a.done - b.done) <= 1  # round-robin: one slice each in turn
    assert idle.done == 0


def test_requests_go_ahead_of_timed_work(pool):
    busy = [Busy() for _ in range(3)]

    class Urgent(Busy):
        def work(self):
            self.others = sum(j.done for j in busy)  # what ran before this request
            self.when = math.inf  # one slice, then idle
            super().work()

    urgent = Urgent(due=math.inf)
    for job in (*busy, urgent):
        pool.add(job)
    assert wait_for(lambda: min(j.done for j in busy) >= 5)
    before = sum(j.done for j in busy)
    urgent.when = NOW
    pool.notify()
    assert wait_for(lambda: urgent.done == 1)
    # it went first: at most the slice in flight (and one begun as it was asked) ran
    assert urgent.others - before <= 2


def test_no_job_runs_on_two_workers_at_once():
    scheduler = Scheduler(workers=2)
    overlaps, inside = [], threading.Semaphore(1)

    class Exclusive(Busy):
        def work(self):
            if not inside.acquire(blocking=False):
                overlaps.append(1)
                return
            try:
                super().work()
            finally:
                inside.release()

    job = Exclusive()
    scheduler.add(job)
    assert wait_for(lambda: job.done >= 100)
    scheduler.close()
    assert not overlaps


def test_slices_take_turns_while_a_task_runs_beside_them():
    scheduler = Scheduler(workers=2)  # one slice at a time, the default
    inside, most = [], [0]
    lock = threading.Lock()

    class Counted(Busy):
        def work(self):
            with lock:
                inside.append(self)
                most[0] = max(most[0], len(inside))
            try:
                super().work()
            finally:
                with lock:
                    inside.remove(self)

    jobs = [Counted(seconds=0.005) for _ in range(3)]
    for job in jobs:
        scheduler.add(job)
    release = threading.Event()
    task = scheduler.run_once(lambda: release.wait(10.0))  # holds a worker meanwhile
    done = sum(j.done for j in jobs)
    assert wait_for(lambda: sum(j.done for j in jobs) >= done + 30)  # beside the task
    release.set()
    assert task.wait(10.0)
    scheduler.close()
    assert most[0] == 1
    assert scheduler.busy() == 3 and scheduler.load() == 3.0


def test_a_removed_job_is_forgotten_after_its_slice(pool):
    job = Busy(seconds=0.05)
    pool.add(job)
    assert wait_for(lambda: pool.running(job))
    pool.remove(job)
    assert not pool.running(job) and pool.jobs == 0
    done = job.done
    time.sleep(0.1)  # a window in which a forgotten job would have run again
    assert job.done == done


def test_invalid_pool_size():
    with pytest.raises(ValueError, match="Invalid workers: 0"):
        Scheduler(workers=0)
    with pytest.raises(ValueError, match="Invalid slices_at_once: 0"):
        Scheduler(workers=2, slices_at_once=0)


def test_the_shared_pool_takes_its_sizes_from_the_environment(monkeypatch):
    monkeypatch.setattr(Scheduler, "_shared", None)  # the test's own, not the process's
    monkeypatch.setenv("PHVIZ_WORKERS", "2")
    monkeypatch.setenv("PHVIZ_SLICES", "two")
    with pytest.raises(ValueError, match="Invalid PHVIZ_SLICES: 'two'"):
        Scheduler.shared()
    monkeypatch.setenv("PHVIZ_SLICES", "2")
    scheduler = Scheduler.shared()
    try:
        assert (scheduler.workers, scheduler.slices_at_once) == (2, 2)
    finally:
        scheduler.close()


# ------------------------------------------------------------------ sessions
def ready_session(scheduler, **kw) -> LiveSession:
    session = LiveSession(make_config("default", horizon=0.0), scheduler=scheduler, **kw)
    assert wait_for(lambda: session.poll() is not None and session.ready)
    return session


def test_pause_is_final_once_settled(pool):
    session = ready_session(pool, max_rate=None)
    session.play()
    assert wait_for(lambda: session.poll().records)
    session.pause()
    assert wait_for(lambda: session.settled)
    tick = session.poll()  # everything the run made before it stopped
    t = session.status()["t"]
    assert session.history.last.t == t and tick.update is not None
    # Settled means the job is not due at all: nothing can run until Play.
    assert session.due() == math.inf and not pool.running(session)
    assert not session.poll().records and session.status()["t"] == t
    session.play()
    assert wait_for(lambda: session.poll() is not None and session.status()["t"] > t)
    session.close()


def test_a_pause_during_a_slice_says_when_it_has_settled(pool):
    """Whoever shows the label Run hears the moment the run stands still, from the
    worker, once: not at its next poll."""
    session = ready_session(pool, max_rate=None)
    gate, released = threading.Event(), threading.Event()
    session.request(lambda _slices: (gate.set(), released.wait(10)))  # a slice held open
    assert gate.wait(10)
    session.play()
    heard = []
    session.pause(then=lambda: heard.append(session.settled))
    assert not session.settled and not heard  # the slice in flight has not ended
    released.set()
    assert wait_for(lambda: heard)
    assert heard == [True]
    session.close()


def test_a_pause_between_slices_needs_no_worker(pool):
    """Pause settles at once when no slice of the run is in flight, even while every
    worker is busy with other sessions."""
    session = ready_session(pool, max_rate=None)
    session.play()
    assert wait_for(lambda: session.poll().records)

    class Long(Busy):
        def work(self):
            self.when = math.inf  # one slice
            super().work()

    other = Long(seconds=3.0, due=NOW)
    pool.add(other)
    assert wait_for(lambda: pool.running(other))  # the one worker is taken
    session.pause()
    assert session.settled and pool.running(other)
    assert session.due() == math.inf
    session.close()


def test_a_page_takes_the_spare_figures_under_way_instead_of_building_its_own(pool):
    spare = SparePlots(patience=30)
    spare.prepare(pool)  # as the last page's load does
    building = spare.spare
    plots = spare.take(pool)
    assert building.done and plots is building.result()
    assert spare.spare is not building  # the next page's spare is another


def test_pictures_and_training_share_one_session_on_the_pool(pool):
    """A playing session's slices both integrate and make pictures: records keep
    arriving while the landscape and the task picture move on."""
    session = ready_session(pool, max_rate=None)
    assert wait_for(lambda: session.shown is not None and session.shown.task is not None)
    landscape, task = session.shown.landscape.version, session.shown.task.version
    session.play()
    records = []

    def both_moved():
        records.extend(session.poll().records)
        return (
            len(records) >= 20
            and session.shown.landscape.version > landscape
            and session.shown.task.version > task
        )

    assert wait_for(both_moved, timeout=60)
    assert [r.interval for r in records] == list(range(1, len(records) + 1))
    assert session.history.last.interval == records[-1].interval
    session.close()


def test_a_hidden_page_stops_its_work(pool):
    session = ready_session(pool, max_rate=None)
    session.play()
    session.set_visible(False)
    assert wait_for(lambda: not pool.running(session))
    assert session.due() == math.inf
    session.set_visible(True)
    assert session.due() < math.inf
    session.close()


def test_two_sessions_share_the_pool_evenly(pool):
    one, two = (ready_session(pool, max_rate=None) for _ in range(2))
    one.play()
    two.play()
    assert wait_for(lambda: pool.slices[one] + pool.slices[two] >= 80, timeout=60)
    pool.close()  # the workers stop: the counts stand still to be compared
    assert abs(pool.slices[one] - pool.slices[two]) <= 1


def test_a_closed_session_leaves_the_pool(pool):
    explorer = Explorer(make_config("default", horizon=0.0), live=False, scheduler=pool)
    assert pool.jobs == 1
    explorer.close()
    assert pool.jobs == 0


# ------------------------------------------------------------------ budget
def test_parameter_count_from_the_widths():
    assert parameter_count("mlp", "16,16", 2, 2) == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    assert parameter_count("linear", "16,16", 2, 2) == 6


def test_a_model_over_the_budget_is_refused_by_name(pool):
    session = ready_session(pool, budget=Budget(max_parameters=200_000))
    build = session.run.build
    session.apply(hidden="4000,4000,4000")
    assert wait_for(lambda: session.poll() and session.notice and session.notice.kind == "danger")
    assert "at most 200,000 parameters on this server" in session.notice.text
    assert session.run.build == build  # nothing was built; the old run stays
    session.apply(hidden="8")  # fixed: the banner says what is true now
    # the new run and its notice come in the same poll
    assert wait_for(lambda: session.poll() and session.run.build != build)
    assert session.notice.kind == "info"
    assert "hidden widths" in session.notice.text
    session.close()


def test_too_many_points_are_refused_by_name(pool):
    session = ready_session(pool, budget=Budget(max_samples=1000))
    session.apply(n_samples=4000)
    assert wait_for(lambda: session.poll() and session.notice and session.notice.kind == "danger")
    assert "at most 1,000 points on this server" in session.notice.text
    session.close()


def test_budget_from_arguments_and_environment():
    budget = Budget.from_settings(
        ["--max-parameters", "5000", "--max-sessions", "3"], {"PHVIZ_MEMORY_MB": "64"}
    )
    assert budget.max_parameters == 5000 and budget.max_sessions == 3
    assert budget.memory_mb == 64.0 and budget.max_samples == Budget().max_samples
    with pytest.raises(ValueError, match="Invalid max_parameters: 'many'"):
        Budget.from_settings(["--max-parameters", "many"], {})
    with pytest.raises(ValueError, match="Invalid max_sessions: 0"):
        Budget(max_sessions=0)


def test_allocations_follow_the_byte_budget():
    small, large = Budget(memory_mb=16), Budget(memory_mb=1024)
    # a wide model on many points: few grid points per batched evaluation
    assert small.chunk_points(300_000, 1500, [256, 256, 10]) < 16
    assert large.chunk_points(338, 399, [16, 16, 2]) > small.chunk_points(338, 399, [16, 16, 2])
    rows = small.history_rows(200_000, 2001)
    assert rows % 2 == 1 and rows * 200_000 * 4 <= 16 * 2**20 or rows == 101


def test_the_gate_admits_up_to_its_limit_and_frees_closed_places():
    gate = SessionGate(2)
    endings = []
    assert gate.admit(endings.append) and gate.admit(endings.append)
    assert not gate.admit(endings.append)  # full
    endings[0](None)  # a tab closed
    assert gate.admit(endings.append)
    assert SessionGate(None).admit(endings.append)


def test_pictures_stretch_with_the_pools_load(small_config):
    pictures = Pictures(Trainer(small_config(horizon=0.0)))
    while pictures.task is None or pictures.phase is None:  # each made once, paused
        pictures.turn()
    pictures.set_load(1)
    alone = {kind: pictures.gap(kind) for kind in ("task", "phase", "landscape")}
    assert alone["task"] >= pictures.periods["task"]
    pictures.set_load(6)  # six busy sessions per worker: the same share of the pool
    for kind, gap in alone.items():
        assert pictures.gap(kind) == pytest.approx(6 * gap, rel=0.5)
    assert pictures.window.min_seconds == pytest.approx(3.0)
    assert pictures.gap("task", playing=False) == 0.0  # paused: a user's change, at once
