"""What the explorer's plots show, as plain data: columns for the sources, ranges,
titles and the status line, made from a session's history, records and pictures.

Nothing here holds a page, a server or a Panel object: each function takes the
session's state and returns numbers, lists and strings, so what an update sends is
tested without a browser. ``Explorer`` puts the results into its Bokeh models.
"""

from __future__ import annotations

import html
import math
from typing import NamedTuple

import numpy as np

from . import figures, help
from .history import momentum_column, theta_column
from .intake import Tick
from .pictures import contour_lines, damping_note

PLANE_NAMES = {"pca": "PCA", "random": "random plane", "coordinates": "two parameters"}
ENERGY_COLUMNS = ("hamiltonian", "potential", "kinetic", "dissipated", "supplied", "residual")
PHASE_LEVELS = 14


class PathPoint(NamedTuple):
    """A point of the stored path, fed to a new landscape window."""

    t: float
    theta: np.ndarray


class Surface(NamedTuple):
    """The landscape picture: image and contour columns, colour range, axes, title."""

    image: dict
    lines: dict
    low: float
    high: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    title: str
    labels: tuple[str, str]


class Trail(NamedTuple):
    """The path on the landscape: ``columns`` are streamed when ``grown``, else they
    replace what was sent; ``sent`` marks what the page holds afterwards."""

    columns: dict
    grown: bool
    head: dict
    t_range: tuple[float, float]
    sent: tuple


class TaskView(NamedTuple):
    """The task picture's columns by source name, its extent and colour top (None where
    the kind has none)."""

    sources: dict
    x_range: tuple[float, float] | None
    y_range: tuple[float, float] | None
    high: float | None


def merged(old: Tick | None, new: Tick) -> Tick:
    """Two polls as one, for an update the page was not ready for: rows appended,
    a reset or rebuild in either kept."""
    if old is None or old.update is None or new.reset:
        if old is not None and old.rebuilt and not new.rebuilt:
            return Tick(new.update, new.records, new.reset, True)
        return new
    if new.update is None:
        return old
    rebuilt = old.update.rebuilt or new.update.rebuilt
    rows = {k: np.concatenate([old.update.rows[k], new.update.rows[k]]) for k in new.update.rows}
    update = type(new.update)(rows, rebuilt)
    return Tick(update, old.records + new.records, old.reset, old.rebuilt or new.rebuilt)


def inline(columns: dict) -> dict:
    """A few rows as plain lists: Bokeh sends each NumPy column as a binary frame of
    its own, and dozens of tiny frames per tick cost the browser more than the data."""
    return {name: np.asarray(values, dtype=float).tolist() for name, values in columns.items()}


def levels(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` contour levels evenly over the finite values."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.linspace(0, 1, n)
    lo, hi = float(finite.min()), float(finite.max())
    return np.linspace(lo, max(hi, lo + 1e-9), n)


def span(values: np.ndarray, margin: float = 0.2) -> tuple[float, float]:
    """The values' range widened by ``margin`` of it (never to nothing)."""
    lo, hi = float(values.min()), float(values.max())
    pad = margin * max(hi - lo, 1e-3 * max(1.0, abs(hi)), 1e-3)
    return lo - pad, hi + pad


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.4g}"


def fmt_rate(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.0f}"


# ------------------------------------------------------------------ numbers
def status_line(status: dict) -> str:
    """The status line's HTML from ``LiveSession.status()``: each term a span that
    explains itself on hover (``help.STATUS``) and wraps as a whole."""
    parts = [
        ("t", f"<b>t</b> {status['t']:.2f}"),
        ("epoch", f"<b>epoch</b> {status['epoch']:.0f}"),
        ("train loss", f"<b>train loss</b> {fmt(status['train_loss'])}"),
        ("test loss", f"<b>test loss</b> {fmt(status['test_loss'])}"),
    ]
    if not math.isnan(status["accuracy"]):
        parts.append(("accuracy", f"<b>accuracy</b> {status['accuracy']:.0%}"))
    parts.append(("H", f"<b>H</b> {fmt(status['hamiltonian'])}"))
    if "ledger" in status:
        parts.append(("ledger", f"<b>ledger</b> {fmt_small(status['ledger'])}"))
    parts += [
        ("nfe", f"<b>nfe</b> {status['nfe']}"),
        ("steps/s", f"<b>{fmt_rate(status['steps_per_second'])}</b> steps/s"),
        ("device", f"<b>{status['device']}</b>"),
    ]
    terms = [
        f'<span class="phviz-term" title="{html.escape(help.STATUS[name])}" '
        f'style="white-space: nowrap; cursor: help">{text}</span>'
        for name, text in parts
    ]
    return f'<div class="phviz-status">{" · ".join(terms)}</div>'


def fmt_small(x: float | None) -> str:
    """A number that is mostly tiny (a residual): two digits, in e-notation when small."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.1e}" if x != 0 and abs(x) < 1e-3 else f"{x:.2g}"


def device_note(status: dict) -> str:
    return f"in use: **{status['device']}**"


def damping_html(estimate, damping: float) -> str:
    """The note under the damping slider: the damping against critical damping."""
    return f'<div class="phviz-damping-note">{damping_note(estimate, damping)}</div>'


# ------------------------------------------------------------------ curves
def time_range(t: np.ndarray, end: float) -> tuple[float, float] | None:
    """A new t axis when the run outgrew the current ``end`` or fills less than half
    of it (room to grow by a quarter); None to keep it."""
    t = np.asarray(t, dtype=float)
    if not len(t):
        return None
    last = max(float(t[-1]), 1.0)
    if end >= last and end <= 2.0 * last:
        return None
    return 0.0, 1.25 * last


def curve_values(data: dict, n_tracked: int, k: int) -> dict[str, np.ndarray]:
    """What each time-series and phase axis must show: energy, all θ_i, all p_i, and
    the phase portrait's θ_k and ±p_k."""
    q, p = np.asarray(data[theta_column(k)]), np.asarray(data[momentum_column(k)])
    return {
        "energy": np.concatenate([data[c] for c in ENERGY_COLUMNS]),
        "theta": np.concatenate([data[theta_column(i)] for i in range(n_tracked)]),
        "momentum": np.concatenate([data[momentum_column(i)] for i in range(n_tracked)]),
        "phase_q": q,
        "phase_p": np.r_[p, -p],
    }


def phase_extent(data: dict, k: int) -> tuple[tuple, tuple] | None:
    """The (θ_k, p_k) window a phase portrait should cover, from the drawn curves
    (None before any finite point)."""
    theta = np.asarray(data[theta_column(k)], dtype=float)
    p = np.asarray(data[momentum_column(k)], dtype=float)
    ok = np.isfinite(theta) & np.isfinite(p)
    if not ok.any():
        return None
    return span(theta[ok]), span(np.r_[p[ok], -p[ok]])


def head(last, k: int) -> dict | None:
    """The phase portrait's dot at the last record's (θ_k, p_k)."""
    if last is None or k >= len(last.theta_sample):
        return None
    return dict(x=[float(last.theta_sample[k])], y=[float(last.p_sample[k])])


def path_points(history) -> list[PathPoint]:
    """The stored path, for a new landscape plane."""
    if history is None:
        return []
    return [
        PathPoint(t, theta) for t, theta in zip(history.times, history.thetas.copy(), strict=True)
    ]


# ------------------------------------------------------------------ pictures
def surface(state) -> Surface:
    """The landscape window's state as a banded log-potential image with contours."""
    z = np.where(np.isfinite(state.Z), state.Z, np.nan)
    logz = np.log10(np.maximum(z, 1e-12))
    bands = levels(logz, figures.LANDSCAPE_LEVELS)
    return Surface(
        image=figures.image_data(*smoothed(state.xs, state.ys, logz)),
        lines=contour_lines(state.xs, state.ys, logz, bands),
        low=float(bands[0]),
        high=float(bands[-1]),
        x_range=(float(state.xs[0]), float(state.xs[-1])),
        y_range=(float(state.ys[0]), float(state.ys[-1])),
        title=landscape_title(state),
        labels=tuple(state.plane.labels),
    )


def landscape_title(state) -> str:
    """The landscape's title: its plane and the share of the path's motion (variance)
    the plane holds, which changes as the path grows."""
    return f"Landscape · {PLANE_NAMES[state.plane.kind]} · {state.explained:.0%} of path"


def profile_columns(picture) -> dict:
    """The gap curve's columns from a ``ProfilePicture`` (empty for None): time, the
    potential the path had, the drawn surface's under it, and their gap."""
    if picture is None:
        return dict(t=[], actual=[], surface=[], gap=[])
    actual, surface = np.asarray(picture.actual, float), np.asarray(picture.surface, float)
    return dict(
        t=np.asarray(picture.t, float),
        actual=actual,
        surface=surface,
        gap=actual - surface,
    )


def trail(state, sent) -> Trail | None:
    """The path's new points, or all of it when the plane changed or the stored path
    was thinned; None when there is nothing (new) on a plane. ``sent`` is the last
    ``Trail.sent`` (-1: nothing yet)."""
    t, xy = state.path_t, state.path_xy
    if not len(t) or len(xy) != len(t):  # no path yet, or not yet on a plane
        return None
    version, sent_n, sent_t = sent if sent != -1 else (-1, 0, 0)
    if version == state.version and sent_n == len(t) and sent_t == t[-1]:
        return None
    grown = bool(
        version == state.version and len(t) > sent_n and sent_n and t[sent_n - 1] == sent_t
    )
    start = sent_n if grown else 0
    columns = dict(x=xy[start:, 0], y=xy[start:, 1], t=t[start:], v=np.full(len(t) - start, np.nan))
    return Trail(
        columns=inline(columns) if grown else columns,
        grown=grown,
        head=inline(dict(x=xy[-1:, 0], y=xy[-1:, 1])),
        t_range=(float(t[0]), float(max(t[-1], t[0] + 1e-9))),
        sent=(state.version, len(t), t[-1]),
    )


def phase_contours(phase) -> dict:
    """Contour lines of a phase picture's log energy."""
    log_energy = np.log10(phase.energy - np.nanmin(phase.energy) + 1e-4)
    return contour_lines(phase.qs, phase.ps, log_energy, levels(log_energy, PHASE_LEVELS))


def phase_title(phase, k: int) -> str:
    return f"Phase · {phase.label} (#{k})"


def task(picture) -> TaskView:
    """A task picture's columns: decision regions, the field and its error, or the
    confusion matrix's cells."""
    if picture.kind in ("regions", "field"):
        xs, ys = picture.xs, picture.ys
        x_range, y_range = (float(xs[0]), float(xs[-1])), (float(ys[0]), float(ys[-1]))
        image = figures.image_data(xs, ys, picture.values)
        if picture.kind == "regions":
            return TaskView({"regions": image}, x_range, y_range, None)
        length = 0.9 * (xs[-1] - xs[0]) / 15
        sources = {
            "error": image,
            "true": arrows(picture.grid, picture.true, length),
            "learned": arrows(picture.grid, picture.learned, length),
        }
        high = float(max(np.nanmax(picture.values), 1e-6))
        return TaskView(sources, x_range, y_range, high)
    counts = picture.values
    n = len(counts)
    cells = dict(
        predicted=[str(j) for i in range(n) for j in range(n)],
        true=[str(i) for i in range(n) for j in range(n)],
        count=counts.reshape(-1),
        label=[f"{c:.0f}" for c in counts.reshape(-1)],
    )
    return TaskView({"cells": cells}, None, None, float(max(counts.max(), 1)))


def has_news(tick: Tick | None, shown, sent: dict, damping: float) -> bool:
    """Whether anything drawn would change (an idle paused page sends nothing);
    ``shown`` is the pictures' snapshot, ``sent`` the versions the page holds."""
    if tick is not None and (tick.records or tick.reset or tick.rebuilt):
        return True
    if shown is None:
        return False
    return (
        shown.landscape.version != sent["landscape"]
        or (shown.task is not None and shown.task.version != sent["task"])
        or (shown.phase is not None and shown.phase.version != sent["phase"])
        or picture_key(getattr(shown, "profile", None)) != sent.get("profile", -1)
        or (
            shown.stiffness is not None
            and (shown.stiffness.version, float(damping)) != sent["stiffness"]
        )
    )


def picture_key(picture) -> int | None:
    """What the page holds of a picture that may be None: its version, or None."""
    return None if picture is None else picture.version


def arrows(grid: np.ndarray, field: np.ndarray, length: float) -> dict:
    """Segments from each grid point along the field, the longest ``length`` long."""
    magnitude = np.linalg.norm(field, axis=-1)
    scale = length / max(float(magnitude.max()), 1e-12)
    end = grid + scale * field
    return dict(x0=grid[:, 0], y0=grid[:, 1], x1=end[:, 0], y1=end[:, 1])


def smoothed(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, factor: int = 4):
    """(xs, ys, z) resampled ``factor`` times finer by bilinear interpolation.

    The surface is computed on a coarse grid (each point is a model evaluation over the
    data); drawn as it is, a banded image shows its cells as steps. Interpolated, the
    bands follow the contour lines drawn from the same grid.
    """
    if factor <= 1 or len(xs) < 2 or len(ys) < 2:
        return xs, ys, z
    fine_x = np.linspace(xs[0], xs[-1], factor * (len(xs) - 1) + 1)
    fine_y = np.linspace(ys[0], ys[-1], factor * (len(ys) - 1) + 1)
    rows = np.stack([np.interp(fine_x, xs, row) for row in z])
    cols = np.stack([np.interp(fine_y, ys, col) for col in rows.T], axis=1)
    return fine_x, fine_y, cols
