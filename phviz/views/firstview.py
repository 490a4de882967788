"""The first view: what the plots show before Run.

At t = 0 each curve is a single point, and a line through one point draws nothing;
so the start of the energy, θ and p curves is marked with dots of the curves'
colours. A single point also gives an axis no span: fitted to it, the ticks of a
range a thousandth wide run into each other. ``readable`` gives such values a
span the ticks can be read on.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource

from .. import colours
from .history import momentum_column, theta_column

MARKER_SIZE = 11
ENERGY = (
    ("hamiltonian", colours.HAMILTONIAN),
    ("potential", colours.POTENTIAL),
    ("kinetic", colours.KINETIC),
)
MARKED = ("energy", "theta", "momentum")  # the timeline's figures, in order


def start_markers(timeline) -> dict[str, ColumnDataSource]:
    """Dots at the first row of each energy, θ and p curve, one renderer per figure;
    returns their sources by figure ("energy", "theta", "momentum"), filled by
    ``show_start``."""
    sources = {}
    for fig, name, marker in zip(timeline, MARKED, ("circle", "circle", "square"), strict=True):
        source = ColumnDataSource(dict(t=[], y=[], colour=[]))
        fig.scatter("t", "y", source=source, size=MARKER_SIZE, color="colour", marker=marker)
        sources[name] = source
    return sources


def show_start(sources: dict[str, ColumnDataSource], columns: dict, n_tracked: int) -> None:
    """The run's first row (of the plots' ``columns``) into the markers' sources."""
    if not len(columns["t"]):
        return
    curves = {
        "energy": ENERGY,
        "theta": [(theta_column(k), colours.coordinate_colour(k)) for k in range(n_tracked)],
        "momentum": [(momentum_column(k), colours.coordinate_colour(k)) for k in range(n_tracked)],
    }
    t = float(columns["t"][0])
    for name, source in sources.items():
        first = [(float(columns[c][0]), colour) for c, colour in curves[name]]
        first = [(y, colour) for y, colour in first if np.isfinite(y)]
        source.data = dict(
            t=[t] * len(first), y=[y for y, _ in first], colour=[c for _, c in first]
        )


def readable(values, *, log: bool = False, floor: float = 0.05) -> np.ndarray:
    """``values`` with two more that widen their span to a readable one: on a linear
    axis at least ``floor`` or a tenth of their size, on a log axis a decade."""
    values = np.asarray(values, dtype=float)
    ok = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not len(ok):
        return values
    lo, hi = float(ok.min()), float(ok.max())
    if log:
        if hi / lo >= 10.0:
            return values
        centre = np.sqrt(lo * hi)
        return np.r_[values, centre / np.sqrt(10.0), centre * np.sqrt(10.0)]
    half = 0.5 * max(floor, 0.1 * max(abs(lo), abs(hi)))
    if hi - lo >= 2 * half:
        return values
    centre = 0.5 * (lo + hi)
    return np.r_[values, centre - half, centre + half]


def widened(lo: float, hi: float, floor: float = 0.05) -> tuple[float, float]:
    """(lo, hi) widened about its centre to the span ``readable`` gives an axis."""
    values = readable(np.array([lo, hi]), floor=floor)
    return float(values.min()), float(values.max())
