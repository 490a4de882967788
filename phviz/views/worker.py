"""The explorer's second thread: pictures that cost model evaluations.

The landscape surface, the task picture (decision regions, learned field, confusion
matrix) and the phase portrait's energy contours all evaluate the model many times.
``PictureWorker`` computes them off the server's thread, at most every ``period``
seconds, and publishes each as one immutable object with a version number; the
explorer's periodic callback sends whatever is newer than what it last sent.
No GUI code here.
"""

from __future__ import annotations

import logging
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
    ):
        self.trainer = trainer
        self.period = period
        self.resolution = resolution
        self.window = LandscapeWindow(
            trainer, kind=plane, coordinates=coordinates, resolution=resolution, max_points=1000
        )
        self.task: TaskPicture | None = None
        self.phase: PhasePicture | None = None
        self.error: str | None = None
        self._pending: list = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refresh = False
        self._phase_request: tuple | None = None
        self._phased: tuple | None = None
        self._versions = 0
        self._last_picture = 0.0
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
        """The potential changed (gains): rebuild the surface at the next turn."""
        self._refresh = True
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
            except Exception as err:  # a picture must never take the page down
                log.exception("picture worker")
                self.error = f"The pictures could not be updated: {err}"
                time.sleep(self.period)

    def _turn(self) -> None:
        with self._lock:
            records, self._pending = self._pending, []
        window = self.window
        if records:
            window.update(records)
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
        if request is not None and (
            last is not None or self.phase is None or request != self._phased
        ):
            self._phased = request
            self._phase(*request, last)

    def _phase(self, index, q_extent, p_extent, last) -> None:
        trainer = self.trainer
        theta = last.theta if last is not None else trainer.last.theta
        potential = Potential.from_trainer(trainer)
        qs, ps, energy = phase_portrait(
            potential,
            theta,
            index,
            q_extent=q_extent,
            p_extent=p_extent,
            resolution=41,
            inertia=trainer.system.inertia,
        )
        self._versions += 1
        label = parameter_label(trainer.system.layout, index)
        self.phase = PhasePicture(index, label, qs, ps, energy, self._versions)


def _around(value: float, half: float = 1.0) -> tuple[float, float]:
    return float(value) - half, float(value) + half
