"""The live window: a plane and surface that follow a growing trajectory."""

from __future__ import annotations

import math
import threading
import time
from typing import NamedTuple

import numpy as np
import torch

from .grid import check_resolution, extent_around
from .inputs import as_matrix, check_chunk
from .naming import parameter_index
from .planes import PLANE_KINDS, Plane
from .potentials import PathProfile, Potential


class WindowState(NamedTuple):
    """One consistent picture: the plane, its surface, and the path projected on it."""

    plane: Plane | None
    xs: np.ndarray
    ys: np.ndarray
    Z: np.ndarray
    path_xy: np.ndarray  # (N, 2), the stored path on ``plane``
    path_t: np.ndarray  # (N,) time of each stored point
    off_plane: np.ndarray  # (N,)
    explained: float  # share of the stored path's variance on the plane
    version: int  # counts refreshes; a view redraws the surface when it changes
    reason: str  # why the last refresh happened


_EMPTY = np.zeros(0)


def _direction_length(plane: Plane) -> float:
    """Mean length of d1 and d2: θ-distance per unit of the plane's coordinates."""
    return float(np.sqrt(np.diag(plane.gram.cpu().numpy())).mean())


class LandscapeWindow:
    """A plane and surface that follow a growing trajectory, for live views.

    Feed it with ``update(records_or_thetas)`` (Records, whose ``.theta`` and ``.t``
    are used, or parameter vectors); it returns True when it refreshed the plane and
    surface. It refreshes when there is no surface yet, when the newest point leaves
    the window, when the newest point is farther off the plane than ``tolerance``
    times the window's half-width (measured in θ), or when a PCA plane
    holds less than ``1 − tolerance`` of the variance share it had when built (these
    last two at most once per ``min_seconds``). On a refresh the stored path is
    reprojected onto the new plane, so path and surface always agree; PCA directions
    keep their sign from one plane to the next.

    One ``update`` does at most one surface evaluation (plus, for PCA, one fit). It
    is meant to be called from one background thread; readers on other threads use
    ``state`` (or the properties), which is swapped in whole, never half-built.
    ``source`` is a Trainer (its gains and data are read again at each refresh) or a
    ``Potential``. The stored path is thinned to at most ``max_points`` points
    (every other one dropped, the newest kept), with their times in ``path_t``.

    The window spans the projected path with ``margin`` on every side and at least
    ``min_span`` per axis (default: a tenth of ‖θ‖ for PCA and coordinate planes,
    1 filter-normalised unit for random planes).
    """

    def __init__(
        self,
        source,
        *,
        kind: str = "pca",
        coordinates: tuple = (0, 1),
        resolution=41,
        margin: float = 0.3,
        tolerance: float = 0.2,
        min_span: float | None = None,
        batch: str = "train",
        seed: int = 0,
        max_points: int = 2000,
        chunk_size: int | None = None,
        min_seconds: float = 0.5,
    ):
        if kind not in PLANE_KINDS:
            raise ValueError(f"Invalid kind: {kind!r} (choose one of {', '.join(PLANE_KINDS)})")
        if not 0 < tolerance < 1:
            raise ValueError(f"Invalid tolerance: {tolerance!r} (must be in (0, 1))")
        if not margin >= 0:
            raise ValueError(f"Invalid margin: {margin!r} (must be >= 0)")
        if min_span is not None and not min_span > 0:
            raise ValueError(f"Invalid min_span: {min_span!r} (must be > 0, or None)")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 4:
            raise ValueError(f"Invalid max_points: {max_points!r} (must be a whole number >= 4)")
        if batch not in ("train", "current"):
            raise ValueError(f"Invalid batch: {batch!r} (choose 'train' or 'current')")
        if not min_seconds >= 0:
            raise ValueError(f"Invalid min_seconds: {min_seconds!r} (must be >= 0)")
        self.min_seconds = float(min_seconds)
        self._refreshed_at = -math.inf
        self.source, self.kind, self.batch = source, kind, batch
        self.resolution = check_resolution(resolution)
        self.margin, self.tolerance, self.min_span = float(margin), float(tolerance), min_span
        self.seed, self.max_points = seed, max_points
        self.chunk_size = None if chunk_size is None else check_chunk(chunk_size)
        layout = self._potential().layout
        self.dim = layout.size
        self.coordinate_keys = tuple(coordinates)
        self.coordinates = tuple(parameter_index(layout, k) for k in coordinates)
        if kind == "coordinates" and self.coordinates[0] == self.coordinates[1]:
            raise ValueError(f"Invalid coordinates: {coordinates!r} (the same parameter twice)")
        self._updating = threading.Lock()
        self._state = self._empty_state()
        self._clear_path()

    # -------------------------------------------------------------- reading
    @property
    def state(self) -> WindowState:
        """The latest consistent picture (safe to read from any thread)."""
        return self._state

    @property
    def plane(self) -> Plane | None:
        return self._state.plane

    @property
    def surface(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs, ys, Z) as ``loss_surface`` returns them (empty before the first update)."""
        s = self._state
        return s.xs, s.ys, s.Z

    @property
    def extent(self) -> tuple[float, float, float, float] | None:
        s = self._state
        if s.plane is None:
            return None
        return (float(s.xs[0]), float(s.xs[-1]), float(s.ys[0]), float(s.ys[-1]))

    @property
    def path_xy(self) -> np.ndarray:
        return self._state.path_xy

    @property
    def path_t(self) -> np.ndarray:
        return self._state.path_t

    @property
    def off_plane(self) -> np.ndarray:
        return self._state.off_plane

    @property
    def explained(self) -> float:
        return self._state.explained

    @property
    def version(self) -> int:
        return self._state.version

    # -------------------------------------------------------------- feeding
    def reset(self) -> None:
        """Forget the path and the surface (e.g. after the run was reset)."""
        with self._updating:
            self._clear_path()
            self._state = self._empty_state()

    def update(self, items, *, refresh: bool = True) -> bool:
        """Append new path points; refresh when needed. Returns True if it refreshed.

        ``items`` is a Record or a list of them, or parameter vectors (one, or rows
        of an array). A Record earlier in time than the last one stored starts a new
        path (the run was reset). ``refresh=False`` only appends (projected on the
        plane in use): the caller refreshes later, when ``pending()`` says so and it
        has the time, as a live view with many sessions does.
        """
        thetas, ts = self._unpack(items)
        with self._updating:
            if len(ts) and len(self._ts) and not np.isnan(ts[0]) and ts[0] < self._ts[-1]:
                self._clear_path()
            if len(thetas):
                self._append(thetas, ts)
            if not len(self._ts):
                return False
            reason = self._reason() if refresh else ""
            if reason:
                self._refresh(reason)
                return True
            s = self._state
            self._publish(s.plane, s.xs, s.ys, s.Z, s.version, s.reason)
            return False

    def pending(self) -> str:
        """Why the window would refresh now ('' if it would not)."""
        with self._updating:
            return self._reason() if len(self._ts) else ""

    def refresh(self, reason: str = "asked") -> bool:
        """Rebuild plane and surface now (e.g. after a change of gains or of batch)."""
        with self._updating:
            if not len(self._ts):
                return False
            self._refresh(reason)
            return True

    def profile(self, max_points: int | None = None) -> PathProfile | None:
        """The stored path's true potential next to the surface's at its projection,
        with each point's time ``t``; None before the first surface.

        The plane is the one the surface in ``state`` was drawn on, and the potential
        is the source's now (a trainer's current gains), as a refresh would draw it.
        ``max_points`` thins the path evenly (its first and newest points kept). Costs
        two evaluations of V per point, about one surface per ``resolution²/2``
        points: call it when the comparison is wanted, not on every update.
        """
        with self._updating:
            plane, thetas, ts = self._state.plane, self._thetas, self._ts
        if plane is None or not len(ts):
            return None
        if max_points is not None and len(ts) > max_points:
            keep = np.unique(np.linspace(0, len(ts) - 1, max(2, max_points)).round().astype(int))
            thetas, ts = thetas[keep], ts[keep]
        return self._potential().profile(plane, thetas)._replace(t=ts.copy())

    # -------------------------------------------------------------- internals
    def _empty_state(self) -> WindowState:
        return WindowState(
            None, _EMPTY, _EMPTY, np.zeros((0, 0)), np.zeros((0, 2)), _EMPTY, _EMPTY, 1.0, 0, ""
        )

    def _clear_path(self) -> None:
        self._thetas = np.zeros((0, self.dim), np.float32)
        self._ts, self._xy, self._off = _EMPTY, np.zeros((0, 2)), _EMPTY
        self._count = 0
        # running sums of (θ − shift) and ‖θ − shift‖² over the stored path (variance)
        self._shift, self._sum, self._sum_sq = None, np.zeros(self.dim), 0.0
        self._baseline = 1.0  # stored-path variance share of the plane when it was built

    def _unpack(self, items):
        if hasattr(items, "theta"):
            items = [items]
        if isinstance(items, (list, tuple)) and not items:
            return np.zeros((0, self.dim), np.float32), _EMPTY
        if isinstance(items, (list, tuple)) and hasattr(items[0], "theta"):
            thetas = np.stack([np.asarray(r.theta, np.float32).reshape(-1) for r in items])
            ts = np.array([float(r.t) for r in items])
        else:
            thetas = as_matrix(items, self.dim).float().cpu().numpy()
            ts = np.full(len(thetas), np.nan)
        if thetas.shape[1] != self.dim:
            raise ValueError(
                f"Invalid thetas: length {thetas.shape[1]}, the model has {self.dim} parameters"
            )
        return thetas, ts

    def _append(self, thetas: np.ndarray, ts: np.ndarray) -> None:
        if np.isnan(ts).any():  # plain vectors: numbered after the points seen so far
            ts = np.arange(self._count, self._count + len(thetas), dtype=np.float64)
        self._count += len(thetas)
        self._thetas = np.concatenate([self._thetas, thetas])
        self._ts = np.concatenate([self._ts, ts])
        self._accumulate(thetas)
        plane = self._state.plane
        if plane is not None:
            p = plane.project(thetas)
            self._xy = np.concatenate([self._xy, p.xy])
            self._off = np.concatenate([self._off, p.off_plane])
        if len(self._ts) > self.max_points:  # keep every other point, and the newest
            keep = np.unique(np.r_[np.arange(0, len(self._ts), 2), len(self._ts) - 1])
            self._thetas, self._ts = self._thetas[keep], self._ts[keep]
            if len(self._xy):
                self._xy, self._off = self._xy[keep], self._off[keep]
            self._shift, self._sum, self._sum_sq = None, np.zeros(self.dim), 0.0
            self._accumulate(self._thetas)

    def _accumulate(self, thetas: np.ndarray) -> None:
        if self._shift is None:  # sums around a point of the path avoid cancellation
            self._shift = thetas[0].astype(np.float64)
        d = thetas.astype(np.float64) - self._shift
        self._sum += d.sum(0)
        self._sum_sq += float((d * d).sum())

    def _explained(self, plane: Plane) -> float:
        """Share of the stored path's variance that lies along ``plane``'s directions.

        The projection is linear, so the in-plane part of θ_t − mean is the plane
        vector of (xy_t − mean xy): its squared length is (Δxy)ᵀ G (Δxy), G the Gram
        matrix of d1, d2.
        """
        n = len(self._ts)
        total = self._sum_sq - float(self._sum @ self._sum) / max(n, 1)
        if n < 2 or total <= 1e-12 * max(self._sum_sq, 1e-300):
            return 1.0
        a = self._xy - self._xy.mean(0)
        g = plane.gram.cpu().numpy()
        return float(min(1.0, np.einsum("ni,ij,nj->", a, g, a) / total))

    def _reason(self) -> str:
        plane = self._state.plane
        if plane is None:
            return "start"
        x, y = self._xy[-1]
        xmin, xmax, ymin, ymax = self.extent
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            return "path left the window"
        if time.monotonic() - self._refreshed_at < self.min_seconds:
            return ""  # the softer reasons wait, so a refresh is not due on every update
        half = 0.5 * min(xmax - xmin, ymax - ymin) * _direction_length(plane)  # in θ units
        if self._off[-1] > self.tolerance * half:
            return "path left the plane"
        if self.kind == "pca" and self._explained(plane) < (1 - self.tolerance) * self._baseline:
            return "plane lost the path's variance"
        return ""

    def _potential(self) -> Potential:
        if isinstance(self.source, Potential):
            return self.source
        if hasattr(self.source, "system") and hasattr(self.source, "dataset"):
            return Potential.from_trainer(self.source, batch=self.batch, chunk_size=self.chunk_size)
        raise TypeError(
            f"Invalid source: {type(self.source).__name__} (give a Trainer or a Potential)"
        )

    def _new_plane(self, potential: Potential) -> Plane:
        head = torch.from_numpy(self._thetas[-1].astype(np.float64))
        if self.kind == "random":
            return Plane.random(potential.layout, head, seed=self.seed)
        if self.kind == "coordinates":
            i, j = self.coordinate_keys
            return Plane.coordinates(head, i, j, layout=potential.layout)
        plane = Plane.from_trajectory(self._thetas, seed=self.seed)
        previous = self._state.plane
        if previous is None or previous.kind != "pca":
            return plane
        d1, d2 = plane.d1, plane.d2  # keep the picture from flipping mirror-wise
        if float(d1 @ previous.d1.to(d1)) < 0:
            d1 = -d1
        if float(d2 @ previous.d2.to(d2)) < 0:
            d2 = -d2
        return Plane(
            plane.origin, d1, d2, kind="pca", labels=plane.labels, explained=plane.explained
        )

    def _refresh(self, reason: str) -> None:
        potential = self._potential()
        plane = self._new_plane(potential)
        projection = plane.project(self._thetas)
        self._xy, self._off = projection.xy, projection.off_plane
        min_span = self.min_span
        if min_span is None and self.kind == "random":
            min_span = 1.0  # filter-normalised units: a step as large as the weights
        elif min_span is None:  # a tenth of ‖θ‖, in units of the directions' length
            min_span = max(
                1e-3, 0.1 * float(np.linalg.norm(self._thetas[-1])) / _direction_length(plane)
            )
        extent = extent_around(self._xy, margin=self.margin, min_span=min_span)
        xs, ys, z = potential.surface(plane, extent, self.resolution)
        self._baseline = self._explained(plane)
        self._refreshed_at = time.monotonic()
        self._publish(plane, xs, ys, z, self._state.version + 1, reason)

    def _publish(self, plane, xs, ys, z, version, reason) -> None:
        explained = self._explained(plane) if plane is not None else 1.0
        self._state = WindowState(
            plane,
            xs,
            ys,
            z,
            self._xy.copy(),
            self._ts.copy(),
            self._off.copy(),
            explained,
            version,
            reason,
        )
