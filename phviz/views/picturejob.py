"""Which of a session's pictures is due, made one a slice and published as one snapshot.

``Pictures`` decides when the landscape, the task picture, the phase portrait and
the curvature spectrum (the Modes view's, which also gives the damping note its
extreme modes) are redone, makes the most overdue one in a slice of the session's
job, and publishes what they show as one immutable ``Shown``. The server's thread
reads only ``shown``. No GUI code here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from ..landscape import LandscapeWindow, WindowState
from .modesjob import ModesJob, ModesTrace
from .pictures import (
    PhasePicture,
    ProfilePicture,
    Stiffness,
    TaskPicture,
    phase_picture,
    profile_picture,
    task_picture,
)
from .spectra import ModesPicture

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shown:
    """What a session's pictures show, as one consistent, immutable snapshot."""

    landscape: WindowState
    task: TaskPicture | None
    phase: PhasePicture | None
    stiffness: Stiffness | None
    error: str | None
    modes: ModesPicture | None = None
    trace: ModesTrace | None = None
    profile: ProfilePicture | None = None  # the landscape's gap along the path


PICTURES = ("landscape", "modes", "task", "phase")
MEMORY_BYTES = 256 * 2**20  # a session's memory, where the caller gives none


class Pictures:
    """The landscape, task and phase pictures of one session, made in its slices.

    Owned by the session's job: every method runs only inside the job's slices, one
    at a time, and each change is published in ``shown``, the one attribute the
    server's thread reads. ``turn`` makes one picture, the most overdue,
    so a slice stays short. While a run plays the pictures follow it every
    ``period``; paused, they move only for what the user did (a step, new gains, a
    new plane), so a paused page stands still. The landscape's path follows every
    record at once, but its surface (when the path leaves it) and the gap curve
    along the path (``profile``) are redone as one of the pictures. With ``load``
    sessions to each worker of a busy pool, every period is ``load`` times longer,
    so pictures take the same share of the pool however many tabs are open, and
    training keeps the rest.
    """

    def __init__(
        self,
        trainer,
        *,
        plane: str = "pca",
        coordinates: tuple[int, int] = (0, 1),
        period: float = 0.4,
        resolution: int = 41,
        chunk_size: int = 256,
        modes_period: float = 3.0,
        memory_bytes: int = MEMORY_BYTES,
    ):
        self.trainer = trainer
        self.periods = {
            "landscape": period,
            "task": period,
            "phase": period,
            "modes": modes_period,
        }
        self.load = 1.0
        self.share = 0.1  # of the session's time that one kind of picture may take
        self._cost = dict.fromkeys(PICTURES, 0.0)  # seconds the last one of each took
        self.window = LandscapeWindow(
            trainer,
            kind=plane,
            coordinates=coordinates,
            resolution=resolution,
            max_points=1000,
            chunk_size=chunk_size,
        )
        self.task: TaskPicture | None = None
        self.phase: PhasePicture | None = None
        self.profile: ProfilePicture | None = None
        self.modes = ModesJob(trainer, memory_bytes)
        self.error: str | None = None
        self._latest = trainer.last
        self._state = 0  # version of the state the pictures should show
        self._moved = 0  # ... of θ alone: the spectrum of L does not change with gains
        self._shown = dict.fromkeys(PICTURES, -1)  # state version each picture shows
        self._made = dict.fromkeys(PICTURES, -math.inf)  # when each was last made
        self._refresh_window = False
        self._surface_reason = ""  # why the landscape's surface should be redone
        self._failed_at = -math.inf
        self.retry = 1.0
        self._versions = 0
        # ``due`` is asked for every session each time a worker looks for work: it is
        # kept until something it depends on changes (each change bumps ``_changes``).
        self._changes = 0
        self._due_cached: tuple = (None, 0.0)  # ((playing, _changes), due)
        index = int(trainer.tracked[0])
        self._phase_request = (index, _around(self._latest.theta[index]), (-1.0, 1.0))
        self.shown = self._snapshot()

    def _snapshot(self) -> Shown:
        modes = self.modes
        return Shown(
            self.window.state,
            self.task,
            self.phase,
            modes.stiffness,
            self.error,
            modes.picture,
            modes.trace,
            profile=self.profile,
        )

    def _changed(self) -> None:
        """Something the due time or the snapshot depends on changed."""
        self._changes += 1
        self.shown = self._snapshot()

    # ------------------------------------------------------------ requests
    def request_phase(self, index: int, q_extent, p_extent) -> None:
        """Contours for coordinate ``index`` over the given extents."""
        self._phase_request = (int(index), tuple(q_extent), tuple(p_extent))
        self._changed()

    def due(self, playing: bool) -> float:
        """When the next picture is wanted (``-inf``: now; ``inf``: none). After a
        failure, not before ``retry`` seconds have passed."""
        key = (playing, self._changes)  # taken first: a change meanwhile bumps it again
        if self._due_cached[0] != key:
            due = self._due(playing)
            due = max(due, self._failed_at + self.retry) if self.error else due
            self._due_cached = (key, due)
        return self._due_cached[1]

    def _due(self, playing: bool) -> float:
        if self._refresh_window or self.window.state.plane is None:
            return -math.inf
        if any(made == -math.inf for made in self._made.values()) or self._new_phase_index():
            return -math.inf
        times = [self._made[k] + self.gap(k, playing) for k in PICTURES if self._behind(k)]
        return min(times, default=math.inf)

    def gap(self, kind: str, playing: bool = True) -> float:
        """Seconds between two pictures of ``kind`` while playing: its period, or
        longer for a costly one (at most ``share`` of the session's time), times the
        pool's load."""
        if not playing:
            return 0.0
        return max(self.periods[kind], self._cost[kind] / self.share) * self.load

    def _behind(self, kind: str) -> bool:
        return self._shown[kind] < self._wanted(kind)

    def _wanted(self, kind: str) -> int:
        """The state version that picture ``kind`` should show."""
        return self._moved if kind == "modes" else self._state

    def _new_phase_index(self) -> bool:
        return self.phase is not None and self._phase_request[0] != self.phase.index

    def set_load(self, load: float) -> None:
        """Sessions per worker of the pool (at least 1): periods stretch with it."""
        load = max(1.0, float(load))
        if load != self.load:
            self.load = load
            self.window.min_seconds = 0.5 * load
            self._changed()

    # ------------------------------------------------------------ the job's side
    def track(self, records: list) -> None:
        """New records: the trail follows at once (and the surface, when the path
        leaves it), so the path is never behind the status line."""
        if records:
            self.window.update(records, refresh=False)
            self._surface_reason = self.window.pending()
            self._latest = records[-1]
            self._state += 1
            self._moved += 1
            self.modes.track(records)
            if self.modes.stale:  # new gains came into force with these records
                self._versions += 1
                self.modes.regain(self._versions)
            self._changed()

    def refresh(self) -> None:
        """The potential changed (gains): surface and pictures are redone, and the
        damping estimate takes the new gains (the spectrum of L stays)."""
        self._refresh_window = True
        self._state += 1
        self._versions += 1
        self.modes.regain(self._versions)
        self._changed()

    def settle(self) -> None:
        """The run paused: what the pictures show now stays until something changes."""
        self._shown = {kind: self._wanted(kind) for kind in PICTURES}
        self._changed()

    def turn(self) -> None:
        """Make the most overdue picture; errors become ``error``, never raise."""
        try:
            self._turn()
        finally:
            self._changed()

    def _turn(self) -> None:
        if self._refresh_window:
            self._refresh_window = False
            self._attempt(lambda: self.window.refresh("gains changed"))
            return
        if self.window.state.plane is None:
            self._attempt(lambda: self.window.update([self._latest]))
            return
        kind = min(PICTURES, key=self._urgency)
        state, record = self._wanted(kind), self._latest
        self._made[kind] = started = time.monotonic()
        self._shown[kind] = state
        self._attempt(lambda: getattr(self, "_make_" + kind)(record))
        self._cost[kind] = time.monotonic() - started

    def _urgency(self, kind: str) -> tuple:
        never = self._made[kind] == -math.inf
        moved = kind == "phase" and self._new_phase_index()
        due = self._made[kind] + self.gap(kind, True)
        return (not never, not moved, not self._behind(kind), due)

    def _attempt(self, make) -> None:
        try:
            make()
            self.error = None
        except Exception as err:  # a picture must never take the page down
            log.exception("pictures")
            self.error = f"The pictures could not be updated: {err}"
            self._failed_at = time.monotonic()

    def _make_landscape(self, record) -> None:
        """The surface when the path has left it, and the gap curve along the path
        (which grows with every record, so it is redone whenever the path moved)."""
        reason, self._surface_reason = self._surface_reason, ""
        if reason:
            self.window.refresh(reason)
        self._versions += 1
        self.profile = profile_picture(self.window, self._versions)

    def _make_task(self, record) -> None:
        self._versions += 1
        self.task = task_picture(self.trainer, record.theta, record.t, self._versions)

    def _make_modes(self, record) -> None:
        self._versions += 1
        self.modes.make(record, self._versions)

    def _make_phase(self, record) -> None:
        index, q_extent, p_extent = self._phase_request
        self._versions += 1
        self.phase = phase_picture(
            self.trainer, record.theta, index, q_extent, p_extent, self._versions
        )


def _around(value: float, half: float = 1.0) -> tuple[float, float]:
    return float(value) - half, float(value) + half
