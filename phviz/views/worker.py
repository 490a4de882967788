"""The explorer's pictures: everything on the page that costs model evaluations.

The landscape surface, the task picture (decision regions, learned field, confusion
matrix) and the phase portrait's energy contours all evaluate the model many times.
``Pictures`` makes them in the session's own slices of the process's worker pool,
one picture per slice, and publishes each as one immutable object with a version
number; the explorer's periodic callback sends whatever is newer than what it last
sent. It also estimates, every few seconds, the stiffest and the flattest curvature
of the loss (Lanczos), so the explorer can say whether the damping is under or over
critical for each of those modes.
No GUI code here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (torch.func imports it on first use: seconds, at start)

from ..curvature import curvature_extremes
from ..data import duffing_field
from ..dynamics import critical_damping
from ..landscape import (
    LandscapeWindow,
    Potential,
    extent_around,
    grid_points,
    parameter_label,
    phase_portrait,
)

log = logging.getLogger(__name__)

REGION_RESOLUTION = 90
ARROW_RESOLUTION = 15
ERROR_RESOLUTION = 60


@dataclass(frozen=True)
class TaskPicture:
    """What the task panel shows at one θ.

    kind 'regions': ``xs``, ``ys``, ``values`` (predicted class on the grid);
    kind 'field': ``grid`` (N, 2) arrow tails, ``learned`` and ``true`` fields there,
    and on the finer ``xs``, ``ys`` the error map ``values`` = ‖Ψ(x) − f(x, θ)‖;
    kind 'confusion': ``values`` (n_classes × n_classes counts, rows = true class).
    """

    kind: str
    version: int
    t: float
    xs: np.ndarray | None = None
    ys: np.ndarray | None = None
    values: np.ndarray | None = None
    grid: np.ndarray | None = None
    learned: np.ndarray | None = None
    true: np.ndarray | None = None


@dataclass(frozen=True)
class Stiffness:
    """The extreme modes at time ``t``: ``curvature`` λ_max, the largest Hessian
    eigenvalue of L (the stiffest mode), ``flattest`` λ_min, the smallest (negative:
    a saddle direction), and the damping that would make each critical with the gains
    then in use (0 where a·λ + c ≤ 0: that mode cannot oscillate)."""

    t: float
    curvature: float
    critical: float
    version: int
    flattest: float = math.nan
    flattest_critical: float = math.nan


def curvature_modes(system, theta: torch.Tensor, *, tol: float = 1e-2) -> dict:
    """λ_min and λ_max of ∇²L at θ on the current batch (Lanczos, ``curvature_extremes``)
    and the critical damping 2√((a·λ + c)·m) of each. A relative ``tol`` of 1 % is
    plenty for a note and keeps the estimate to tens of Hessian-vector products.
    Per-parameter gains are bounded by their largest entries."""
    lo, hi = curvature_extremes(system.loss, theta, tol=tol)
    a = _largest(system.potential_gain)
    decay, inertia = (_largest(g) for g in (system.weight_decay, system.inertia))

    def critical(curvature: float) -> float:
        return critical_damping(curvature, inertia=inertia, potential_gain=a, weight_decay=decay)

    return {
        "curvature": hi,
        "critical": critical(hi),
        "flattest": lo,
        "flattest_critical": critical(lo),
    }


def stiffness(system, theta: torch.Tensor, *, iterations: int = 20) -> tuple[float, float]:
    """(λ, critical damping) of the stiffest mode at θ.

    Weight decay c adds c to every curvature of the potential a·L + (c/2)‖θ‖², so the
    critical damping of the mode is 2√((a·λ + c)·m), which ``critical_damping`` computes.
    Per-parameter gains are bounded by their largest entries.
    """
    curvature = system.top_curvature(theta, iterations=iterations)
    decay, inertia = (_largest(g) for g in (system.weight_decay, system.inertia))
    return curvature, system.critical_damping(curvature, inertia, weight_decay=decay)


def _largest(gain) -> float:
    return float(gain.max()) if isinstance(gain, torch.Tensor) else float(gain)


def damping_regime(damping: float, critical: float, band: float = 0.1) -> str:
    """'under-damped', 'critically damped' or 'over-damped' for ``damping`` against
    ``critical`` (within ``band`` of it, relatively, counts as critical)."""
    if not damping > 0:
        return "undamped"
    if not critical > 0:
        return "over-damped"
    ratio = damping / critical
    if ratio < 1 - band:
        return "under-damped"
    if ratio > 1 + band:
        return "over-damped"
    return "critically damped"


def damping_note(estimate: Stiffness | None, damping: float) -> str:
    """The damping note in words (HTML): for the stiffest (λ_max) and the flattest
    (λ_min) mode, its critical damping and the regime ``damping`` puts it in."""
    if estimate is None:
        return "critical damping: estimating…"
    modes = [("stiffest", estimate.curvature, estimate.critical, "λ_max")]
    if not math.isnan(estimate.flattest):
        modes.append(("flattest", estimate.flattest, estimate.flattest_critical, "λ_min"))
    lines = []
    for name, curvature, critical, symbol in modes:
        if curvature < 0:
            lines.append(
                f"{name} mode: {symbol} ≈ {curvature:.3g} &lt; 0, a saddle direction: the "
                "loss falls away along it, nothing to oscillate, no critical damping"
            )
        elif not critical > 0:
            lines.append(
                f"{name} mode: {symbol} ≈ {curvature:.3g}, flat: no critical damping "
                f"(B = {damping:.3g}: <b>over-damped</b>)"
            )
        else:
            regime = damping_regime(damping, critical)
            lines.append(
                f"{name} mode ({symbol} ≈ {curvature:.3g}): critical damping ≈ "
                f"<b>{critical:.3g}</b> · B = {damping:.3g}: <b>{regime}</b>"
            )
    return "<br>".join(lines)


@dataclass(frozen=True)
class PhasePicture:
    """Energy contours of coordinate ``index``'s (θ_i, p_i) slice."""

    index: int
    label: str
    qs: np.ndarray
    ps: np.ndarray
    energy: np.ndarray
    version: int


def contour_lines(xs, ys, z, levels) -> dict[str, np.ndarray]:
    """Level lines of z (z.shape == (len(ys), len(xs))) as one line's source data, the
    lines separated by NaN: two arrays on the wire, where a multi-line sends two per
    line (a landscape has dozens)."""
    import contourpy

    generator = contourpy.contour_generator(
        xs, ys, np.ma.masked_invalid(z), line_type=contourpy.LineType.ChunkCombinedNan
    )
    chunks = [generator.lines(level)[0][0] for level in levels]
    chunks = [c for c in chunks if c is not None]
    if not chunks:
        return {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
    points = np.concatenate([np.vstack([c, [[np.nan, np.nan]]]) for c in chunks])
    return {"x": points[:, 0].astype(np.float32), "y": points[:, 1].astype(np.float32)}


def task_kind(trainer) -> str:
    ds = trainer.dataset
    if ds.task == "classification":
        return "regions" if ds.input_dim == 2 else "confusion"
    plane_to_plane = ds.input_dim == 2 and ds.output_dim == 2
    return "field" if ds.name == "duffing" or plane_to_plane else "none"


@torch.no_grad()
def task_picture(trainer, theta: np.ndarray, t: float, version: int) -> TaskPicture | None:
    """The task panel's picture for parameters ``theta`` of ``trainer``'s model."""
    kind = task_kind(trainer)
    ds, system = trainer.dataset, trainer.system
    theta_t = torch.as_tensor(theta).to(device=trainer.device, dtype=trainer.dtype)

    def predict(x: np.ndarray) -> np.ndarray:
        inputs = torch.as_tensor(x).to(device=trainer.device, dtype=trainer.dtype)
        return system.forward(theta_t, inputs).double().cpu().numpy()

    if kind == "regions":
        extent = extent_around(ds.x_train.cpu().numpy(), margin=0.15, per_axis=True)
        xs, ys, grid = grid_points(extent, REGION_RESOLUTION)
        classes = predict(grid).argmax(-1).reshape(len(ys), len(xs))
        return TaskPicture("regions", version, t, xs=xs, ys=ys, values=classes)
    if kind == "confusion":
        x, y = (ds.x_test, ds.y_test) if len(ds.x_test) else (ds.x_train, ds.y_train)
        predicted = predict(x.cpu().numpy()).argmax(-1)
        counts = np.zeros((ds.n_classes, ds.n_classes))
        np.add.at(counts, (y.cpu().numpy(), predicted), 1)
        return TaskPicture("confusion", version, t, values=counts)
    if kind == "field":
        extent = extent_around(ds.x_train.cpu().numpy(), margin=0.15, per_axis=True)
        xs, ys, fine = grid_points(extent, ERROR_RESOLUTION)
        if ds.name == "duffing":
            _, _, arrows = grid_points(extent, ARROW_RESOLUTION)
            true, fine_true = duffing_field(arrows), duffing_field(fine)
        else:  # a field known at its points only: arrows there, the nearest one's target
            arrows, true, fine_true = _field_samples(ds, fine)
        error = np.linalg.norm(predict(fine) - fine_true, axis=-1)
        return TaskPicture(
            "field",
            version,
            t,
            xs=xs,
            ys=ys,
            values=error.reshape(len(ys), len(xs)),
            grid=arrows,
            learned=predict(arrows),
            true=true,
        )
    return None


def _field_samples(ds, fine: np.ndarray, most: int = ARROW_RESOLUTION**2):
    """Up to ``most`` of a field's training points and their targets (the arrows), and
    on the ``fine`` grid the target of the nearest of them (the error map's truth)."""
    x = ds.x_train.double().cpu().numpy()
    y = ds.y_train.double().cpu().numpy()
    if len(x) > most:
        keep = np.linspace(0, len(x) - 1, most).astype(int)
        x, y = x[keep], y[keep]
    nearest = ((fine[:, None, :] - x[None, :, :]) ** 2).sum(-1).argmin(1)
    return x, y, y[nearest]


PICTURES = ("landscape", "stiffness", "task", "phase")


class Pictures:
    """The landscape, task and phase pictures of one session, made in its slices.

    Owned by the session's job: ``track``, ``refresh``, ``settle`` and ``turn`` run
    only inside the job's slices, one at a time, while the server's thread reads the
    published attributes (``window.state``, ``task``, ``phase``, ``stiffness``,
    ``error``), each swapped in whole. ``turn`` makes one picture, the most overdue,
    so a slice stays short. While a run plays the pictures follow it every
    ``period``; paused, they move only for what the user did (a step, new gains, a
    new plane), so a paused page stands still. The landscape's path follows every
    record at once, but its surface is redone (when the path leaves it) as one of
    the pictures. With ``load`` sessions to each worker of a busy pool, every period
    is ``load`` times longer, so pictures take the same share of the pool however
    many tabs are open, and training keeps the rest.
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
        stiffness_period: float = 3.0,
    ):
        self.trainer = trainer
        self.periods = {
            "landscape": period,
            "task": period,
            "phase": period,
            "stiffness": stiffness_period,
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
        self.stiffness: Stiffness | None = None
        self.error: str | None = None
        self._latest = trainer.last
        self._state = 0  # version of the state the pictures should show
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

    # ------------------------------------------------------------ requests
    def request_phase(self, index: int, q_extent, p_extent) -> None:
        """Contours for coordinate ``index`` over the given extents (any thread)."""
        self._phase_request = (int(index), tuple(q_extent), tuple(p_extent))
        self._changes += 1

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
        if kind == "landscape" and not self._surface_reason:
            return False
        return self._shown[kind] < self._state

    def _new_phase_index(self) -> bool:
        return self.phase is not None and self._phase_request[0] != self.phase.index

    def set_load(self, load: float) -> None:
        """Sessions per worker of the pool (at least 1): periods stretch with it."""
        load = max(1.0, float(load))
        if load != self.load:
            self.load = load
            self.window.min_seconds = 0.5 * load
            self._changes += 1

    # ------------------------------------------------------------ the job's side
    def track(self, records: list) -> None:
        """New records: the trail follows at once (and the surface, when the path
        leaves it), so the path is never behind the status line."""
        if records:
            self.window.update(records, refresh=False)
            self._surface_reason = self.window.pending()
            self._latest = records[-1]
            self._state += 1
            self._changes += 1

    def refresh(self) -> None:
        """The potential changed (gains): surface, pictures and damping estimate are
        redone."""
        self._refresh_window = True
        self._state += 1
        self._changes += 1

    def settle(self) -> None:
        """The run paused: what the pictures show now stays until something changes."""
        self._shown = dict.fromkeys(PICTURES, self._state)
        self._changes += 1

    def turn(self) -> None:
        """Make the most overdue picture; errors become ``error``, never raise."""
        try:
            self._turn()
        finally:
            self._changes += 1

    def _turn(self) -> None:
        if self._refresh_window:
            self._refresh_window = False
            self._attempt(lambda: self.window.refresh("gains changed"))
            return
        if self.window.state.plane is None:
            self._attempt(lambda: self.window.update([self._latest]))
            return
        kind = min(PICTURES, key=self._urgency)
        state, record = self._state, self._latest
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
        reason, self._surface_reason = self._surface_reason, ""
        if reason:
            self.window.refresh(reason)

    def _make_task(self, record) -> None:
        self._versions += 1
        self.task = task_picture(self.trainer, record.theta, record.t, self._versions)

    def _make_stiffness(self, record) -> None:
        trainer = self.trainer
        theta = torch.as_tensor(record.theta).to(device=trainer.device, dtype=trainer.dtype)
        modes = curvature_modes(trainer.system, theta)
        if math.isfinite(modes["curvature"]):
            self._versions += 1
            self.stiffness = Stiffness(record.t, version=self._versions, **modes)

    def _make_phase(self, record) -> None:
        index, q_extent, p_extent = self._phase_request
        trainer = self.trainer
        potential = Potential.from_trainer(trainer)
        inertia = trainer.system.inertia
        qs, ps, energy = phase_portrait(
            potential,
            record.theta,
            index,
            q_extent=q_extent,
            p_extent=p_extent,
            resolution=41,
            inertia=inertia,
        )
        ps, energy = _closed_orbits(qs, ps, energy, _entry(inertia, index))
        self._versions += 1
        label = parameter_label(trainer.system.layout, index)
        self.phase = PhasePicture(index, label, qs, ps, energy, self._versions)


def _entry(gain, index: int) -> float:
    if isinstance(gain, torch.Tensor) and gain.dim():
        return float(gain[index])
    return float(gain)


def _closed_orbits(qs, ps, energy, inertia: float):
    """Widen the momentum axis to ±√(2·m·ΔV), ΔV the potential's range over ``qs``.

    A path's own momenta can be far smaller than the potential's drop along θ_i; the
    contours of V + p²/2m then show only the kinetic term, as flat lines. With this
    extent the level sets close into the orbits the coordinate would follow.
    """
    row = int(np.argmin(np.abs(ps)))
    potential_q = energy[row] - ps[row] ** 2 / (2 * inertia)
    finite = potential_q[np.isfinite(potential_q)]
    if not len(finite):
        return ps, energy
    half = max(float(np.abs(ps).max()), math.sqrt(2 * inertia * float(np.ptp(finite))))
    ps = np.linspace(-half, half, len(ps))
    return ps, ps[:, None] ** 2 / (2 * inertia) + potential_q[None, :]


def _around(value: float, half: float = 1.0) -> tuple[float, float]:
    return float(value) - half, float(value) + half
