"""Windows and grids on a plane: extents, resolutions and the points between them."""

from __future__ import annotations

import math

import numpy as np


def check_extent(extent) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) as floats, or ValueError when empty or not finite."""
    try:
        values = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid extent: {extent!r} (expected (xmin, xmax, ymin, ymax))"
        ) from None
    if len(values) != 4:
        raise ValueError(f"Invalid extent: {extent!r} (expected 4 numbers: xmin, xmax, ymin, ymax)")
    xmin, xmax, ymin, ymax = values
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Invalid extent: {extent!r} (all four numbers must be finite)")
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"Invalid extent: {extent!r} (empty: need xmin < xmax and ymin < ymax)")
    return values


def check_resolution(resolution) -> tuple[int, int]:
    """(nx, ny) from an int or a pair; each at least 2 grid points."""
    pair = resolution if isinstance(resolution, (tuple, list)) else (resolution, resolution)
    if len(pair) != 2:
        raise ValueError(f"Invalid resolution: {resolution!r} (an int or a pair (nx, ny))")
    for r in pair:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise TypeError(f"Invalid resolution: {resolution!r} (expected whole numbers)")
        if r < 2:
            raise ValueError(
                f"Invalid resolution: {resolution!r} (need at least 2 points per axis)"
            )
    return int(pair[0]), int(pair[1])


def extent_around(
    xy,
    *,
    margin: float = 0.25,
    min_span: float = 1e-3,
    square: bool = False,
    per_axis: bool = False,
):
    """(xmin, xmax, ymin, ymax) around points ``xy`` (N, 2), padded on every side.

    The padding is ``margin`` times the larger of the two spans (and of ``min_span``),
    so that a path that is nearly a line still gets a window with some breadth;
    ``per_axis=True`` pads each axis by ``margin`` of its own span instead (for data
    whose axes have their own units). An axis narrower than ``min_span`` is widened
    to it. ``square=True`` gives both axes the same span (for equal-aspect plots).
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError("Invalid points: need at least one finite (x, y) pair")
    if not (margin >= 0 and min_span > 0):
        raise ValueError(f"Invalid margin/min_span: {margin!r}, {min_span!r} (need >= 0, > 0)")
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, min_span) if per_axis else max(float((hi - lo).max()), min_span)
    pad = margin * span + 0.5 * np.maximum(0.0, min_span - (hi - lo))
    lo, hi = lo - pad, hi + pad
    if square:
        centre, half = 0.5 * (lo + hi), 0.5 * float((hi - lo).max())
        lo, hi = centre - half, centre + half
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def grid_points(extent, resolution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xs, ys and the (len(ys)·len(xs), 2) grid points, row-major: point i·nx + j is (xs[j], ys[i]).

    ``resolution`` is points per axis, an int or (nx, ny).
    """
    xmin, xmax, ymin, ymax = check_extent(extent)
    nx, ny = check_resolution(resolution)
    xs, ys = np.linspace(xmin, xmax, nx), np.linspace(ymin, ymax, ny)
    return xs, ys, np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
