"""The explorer's second thread: pictures that cost model evaluations.

The landscape surface, the task picture (decision regions, learned field, confusion
matrix) and the phase portrait's energy contours all evaluate the model many times.
``PictureWorker`` computes them off the server's thread, at most every ``period``
seconds, and publishes each as one immutable object with a version number; the
explorer's periodic callback sends whatever is newer than what it last sent. It also
estimates, every few seconds, the stiffest curvature of the loss, so the explorer can
say whether the damping is under or over critical for that mode. No GUI code here.

The thread turns at most every ``min_gap`` seconds however often it is fed: on two
cores every turn is time the training thread does not get.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..data import duffing_field
from ..landscape import LandscapeWindow, Potential, parameter_label, phase_portrait

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
    """The stiffest mode at time ``t``: λ, the largest Hessian eigenvalue of L, and
    the damping that would make that mode critical with the gains then in use."""

    t: float
    curvature: float
    critical: float
    version: int


def stiffness(system, theta: torch.Tensor, *, iterations: int = 20) -> tuple[float, float]:
    """(λ, critical damping) of the stiffest mode at θ (DESIGN §1).

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


@dataclass(frozen=True)
class PhasePicture:
    """Energy contours of coordinate ``index``'s (θ_i, p_i) slice."""

    index: int
    label: str
    qs: np.ndarray
    ps: np.ndarray
    energy: np.ndarray
    version: int


def contour_lines(xs, ys, z, levels) -> dict[str, list]:
    """Level lines of z (z.shape == (len(ys), len(xs))) as multi-line source data."""
    import contourpy

    generator = contourpy.contour_generator(xs, ys, np.ma.masked_invalid(z))
    out = {"xs": [], "ys": []}
    for level in levels:
        for line in generator.lines(level):
            out["xs"].append(line[:, 0])
            out["ys"].append(line[:, 1])
    return out


def padded_extent(points: np.ndarray, margin: float = 0.15) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) around 2-D points, widened by ``margin`` of each span."""
    lo, hi = points.min(0), points.max(0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return (
        float(lo[0] - pad[0]),
        float(hi[0] + pad[0]),
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )


def grid_points(extent, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xs, ys and the (len(ys)·len(xs), 2) points, row-major (point [i·nx + j] = (xs[j], ys[i]))."""
    xmin, xmax, ymin, ymax = extent
    xs, ys = np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution)
    return xs, ys, np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)


def task_kind(trainer) -> str:
    ds = trainer.dataset
    if ds.task == "classification":
        return "regions" if ds.input_dim == 2 else "confusion"
    return "field" if ds.name == "duffing" else "none"


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
        extent = padded_extent(ds.x_train.cpu().numpy())
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
        extent = padded_extent(ds.x_train.cpu().numpy())
        _, _, arrows = grid_points(extent, ARROW_RESOLUTION)
        xs, ys, fine = grid_points(extent, ERROR_RESOLUTION)
        error = np.linalg.norm(predict(fine) - duffing_field(fine), axis=-1)
        return TaskPicture(
            "field",
            version,
            t,
            xs=xs,
            ys=ys,
            values=error.reshape(len(ys), len(xs)),
            grid=arrows,
            learned=predict(arrows),
            true=duffing_field(arrows),
        )
    return None


class PictureWorker:
    """A daemon thread that keeps the landscape, task and phase pictures current."""

    def __init__(
        self,
        trainer,
        *,
        plane: str = "pca",
        coordinates: tuple[int, int] = (0, 1),
        period: float = 0.4,
        resolution: int = 41,
        min_gap: float = 0.15,
        stiffness_period: float = 2.0,
    ):
        self.trainer = trainer
        self.period = period
        self.min_gap = min_gap
        self.stiffness_period = stiffness_period
        self.resolution = resolution
        self.window = LandscapeWindow(
            trainer, kind=plane, coordinates=coordinates, resolution=resolution, max_points=1000
        )
        self.task: TaskPicture | None = None
        self.phase: PhasePicture | None = None
        self.stiffness: Stiffness | None = None
        self.error: str | None = None
        self._pending: list = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refresh = False
        self._phase_request: tuple | None = None
        self._phased: tuple | None = None
        self._versions = 0
        self._last_picture = self._last_phase = self._last_stiffness = -float("inf")
        self._latest = trainer.last
        # The first pictures are made here, so that a view never starts empty.
        first = trainer.last
        theta = first.theta
        self._pending = [first]
        self._phase_request = (int(trainer.tracked[0]), _around(theta[trainer.tracked[0]]), (-1, 1))
        self._turn()
        self._thread = threading.Thread(target=self._loop, name="phviz-pictures", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ requests
    def stale(self) -> bool:
        return not self._thread.is_alive()

    def feed(self, records: list) -> None:
        """New records (from any thread); the path and pictures follow."""
        if records:
            with self._lock:
                self._pending.extend(records)
            self._wake.set()

    def refresh(self) -> None:
        """The potential changed (gains): rebuild the surface and the damping estimate
        at the next turn."""
        self._refresh = True
        self._last_stiffness = -float("inf")
        self._wake.set()

    def request_phase(self, index: int, q_extent, p_extent) -> None:
        """Contours for coordinate ``index`` over the given extents, at the next turn."""
        self._phase_request = (int(index), tuple(q_extent), tuple(p_extent))
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._turn()
                self.error = None
            except Exception as err:  # a picture must never take the page down
                log.exception("picture worker")
                self.error = f"The pictures could not be updated: {err}"
                self._stop.wait(self.period)
            self._stop.wait(self.min_gap)  # records meanwhile wait for the next turn

    def _turn(self) -> None:
        with self._lock:
            records, self._pending = self._pending, []
        window = self.window
        if records:
            window.update(records)
            self._latest = records[-1]
        if self._refresh:
            self._refresh = False
            window.refresh("gains changed")
        last = records[-1] if records else None
        now = time.monotonic()
        if last is not None and (self.task is None or now - self._last_picture >= self.period):
            self._last_picture = now
            self._versions += 1
            self.task = task_picture(self.trainer, last.theta, last.t, self._versions)
        request = self._phase_request
        due = last is not None and now - self._last_phase >= self.period
        new_index = self._phased is None or request[0] != self._phased[0]
        if request is not None and (self.phase is None or new_index or due):
            self._phased, self._last_phase = request, now
            self._phase(*request, last)
        if now - self._last_stiffness >= self.stiffness_period:
            self._last_stiffness = now
            self._estimate_stiffness(self._latest)

    def _estimate_stiffness(self, record) -> None:
        trainer = self.trainer
        theta = torch.as_tensor(record.theta).to(device=trainer.device, dtype=trainer.dtype)
        try:
            curvature, critical = stiffness(trainer.system, theta)
        except (RuntimeError, ValueError):  # a batch swapped mid-estimate: next time
            return
        if math.isfinite(curvature):
            self._versions += 1
            self.stiffness = Stiffness(record.t, curvature, critical, self._versions)

    def _phase(self, index, q_extent, p_extent, last) -> None:
        trainer = self.trainer
        theta = last.theta if last is not None else trainer.last.theta
        potential = Potential.from_trainer(trainer)
        inertia = trainer.system.inertia
        qs, ps, energy = phase_portrait(
            potential,
            theta,
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
