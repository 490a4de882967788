"""What the Modes view draws, as plain data: the spectral density on a log-μ axis
coloured by regime, the saddles apart, the critical line, and the motion along the
extreme Ritz vectors.

The spectra the slices make are of the loss L alone (a = 1, c = 0). Each function
here maps them to the potential's curvatures μ = a·λ + c with the gains of the moment
(``Gains``, the sidebar's), so a change of any gain recolours the view at once, with
no new spectrum. A direction of curvature μ > 0 moves as m·q̈ + B·q̇ + μ·q = 0: it
rings when B < 2√(μ·m), that is above the critical curvature μ_c = B²/(4m), and
creeps below it; within ``BAND`` of critical damping (ζ = B/(2√(μ·m)) within 10 % of
1) it counts as near critical, as ``Spectrum.regimes`` has it. Directions with μ ≤ 0
are saddles: no damping makes them ring. No Panel or Bokeh objects here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from ..spectrum import Spectrum

BAND = 0.1  # ζ within this of 1 counts as near critical (as in Spectrum.regimes)
REGIMES = ("oscillating", "near critical", "creeping")
REGIME_COLOURS = {
    "oscillating": "#e6550d",  # orange: rings
    "near critical": "#31a354",  # green
    "creeping": "#3182bd",  # blue: creeps
    "saddle": "#756bb1",  # purple: runs away
}
REGIME_WORDS = {
    "oscillating": "rings",
    "near critical": "near critical",
    "creeping": "creeps",
    "saddle": "saddle",
}
BINS_PER_DECADE = 6
MOST_BINS = 48
SPAN = 1e8  # the log axis spans at most this ratio below the stiffest curvature
FLOOR = 0.01  # directions: the density axis's lower end; thinner bars show as stubs


@dataclasses.dataclass(frozen=True)
class Gains:
    """The gains of the moment (scalars, as the sidebar shows them)."""

    damping: float
    inertia: float
    potential_gain: float
    weight_decay: float

    @classmethod
    def of(cls, settings) -> Gains:
        return cls(
            float(settings.damping),
            float(settings.inertia),
            float(settings.potential_gain),
            float(settings.weight_decay),
        )


def mapped(spectrum: Spectrum, gains: Gains) -> Spectrum:
    """``spectrum`` of L as the potential's: every λ becomes μ = a·λ + c."""
    a, c = gains.potential_gain, gains.weight_decay
    values = spectrum.vector_values
    return dataclasses.replace(
        spectrum,
        eigenvalues=a * spectrum.eigenvalues + c,
        extremes=(a * spectrum.extremes[0] + c, a * spectrum.extremes[1] + c),
        vector_values=None if values is None else a * values + c,
    )


def critical_curvature(gains: Gains) -> float:
    """μ_c = B²/(4m): modes stiffer than it ring, flatter ones creep."""
    return gains.damping**2 / (4.0 * gains.inertia)


def near_critical(gains: Gains, band: float = BAND) -> tuple[float, float]:
    """The μ between which a mode counts as near critical: ζ = √(μ_c/μ) within
    ``band`` of 1, so μ_c/(1 + band)² ≤ μ ≤ μ_c/(1 − band)²."""
    mu = critical_curvature(gains)
    return mu / (1.0 + band) ** 2, mu / (1.0 - band) ** 2 if band < 1 else math.inf


def regimes(mu, gains: Gains, band: float = BAND) -> np.ndarray:
    """The regime of each curvature ``mu`` of the potential under ``gains``:
    'oscillating', 'near critical', 'creeping' or 'saddle' (``Spectrum.regimes``)."""
    mu = np.atleast_1d(np.asarray(mu, dtype=float))
    weights = np.full(mu.shape, 1.0 / max(1, len(mu)))
    finite = mu[np.isfinite(mu)]
    ends = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
    probe = Spectrum(eigenvalues=mu, weights=weights, extremes=ends)
    return probe.regimes(gains.damping, gains.inertia, band)


def colours(mu, gains: Gains, band: float = BAND) -> list[str]:
    """The regime colour of each curvature ``mu`` under ``gains``."""
    return [REGIME_COLOURS[r] for r in regimes(mu, gains, band)]


class Density(NamedTuple):
    """The Modes view's density picture under one set of gains.

    ``bars``: quads (left, right, top, bottom, mu, count, regime, color) of μ > 0 on
    a log axis; ``saddles``: the same over |μ| of μ ≤ 0; ``ritz``: each Ritz value
    μ > 0 as a mark (x, y, regime, color); ``x_range``: the log axis's ends, the
    critical line included; ``saddle_share``: the saddles' share of the directions;
    ``critical``: μ_c (0: no damping, every mode rings).
    """

    bars: dict
    saddles: dict
    ritz: dict
    x_range: tuple[float, float]
    saddle_share: float
    critical: float


def _bars(values, weights, dim: int, gains: Gains, sign: float = 1.0) -> dict:
    """Log-spaced bins of |values| (all > 0), their weight × ``dim`` as counts."""
    empty = {k: [] for k in ("left", "right", "top", "bottom", "mu", "count", "regime", "color")}
    positive = values > 0
    values, weights = values[positive], weights[positive]
    if not len(values):
        return empty
    low, high = float(values.min()), float(values.max())
    low = max(low, high / SPAN)
    decades = max(math.log10(high / low), 0.5)
    n = int(min(MOST_BINS, max(8, round(decades * BINS_PER_DECADE))))
    edges = np.geomspace(low / 1.15, high * 1.15, n + 1)
    clipped = np.clip(values, low, None)
    counts = np.histogram(clipped, bins=edges, weights=weights)[0]
    logs = np.histogram(clipped, bins=edges, weights=weights * np.log(clipped))[0]
    keep = counts > 0
    left, right = edges[:-1][keep], edges[1:][keep]
    # each bar's curvature: the weighted geometric mean of the Ritz values in it
    centre = np.exp(logs[keep] / counts[keep])
    counts = counts[keep] * dim
    labels = regimes(sign * centre, gains) if sign > 0 else np.full(len(centre), "saddle")
    return {
        "left": left,
        "right": right,
        "top": np.maximum(counts, 1.6 * FLOOR),
        "bottom": np.full(len(counts), FLOOR),
        "mu": sign * centre,
        "count": counts,
        "regime": list(labels),
        "color": [REGIME_COLOURS[r] for r in labels],
    }


def density(spectrum: Spectrum, gains: Gains, dim: int) -> Density:
    """The density of ``spectrum`` (of L) under ``gains``, for a model of ``dim``
    parameters: bars of the estimated number of directions per log-μ bin."""
    mu_spectrum = mapped(spectrum, gains)
    mu, weights = mu_spectrum.eigenvalues, mu_spectrum.weights
    stiff = mu > 0
    bars = _bars(mu[stiff], weights[stiff], dim, gains)
    saddles = _bars(-mu[~stiff], weights[~stiff], dim, gains, sign=-1.0)
    critical = critical_curvature(gains)
    shown = mu[stiff]
    ritz = {
        "x": shown,
        "y": np.full(len(shown), FLOOR * 1.25),
        "regime": list(regimes(shown, gains)),
        "color": colours(shown, gains),
    }
    return Density(
        bars,
        saddles,
        ritz,
        log_extent(shown, critical),
        float(weights[~stiff].sum() / max(weights.sum(), 1e-300)),
        critical,
    )


def log_extent(mu: np.ndarray, critical: float) -> tuple[float, float]:
    """The log-μ axis's ends: every μ > 0 shown and the critical line too (within
    ``SPAN`` below the stiffest), with a margin."""
    values = [float(v) for v in np.asarray(mu, dtype=float) if v > 0 and math.isfinite(v)]
    if critical > 0 and math.isfinite(critical):
        values.append(critical)
    if not values:
        return 1e-3, 1.0
    high = max(values)
    low = max(min(values), high / SPAN)
    if high / low < 10:  # at least a decade, around the middle
        middle = math.sqrt(high * low)
        low, high = middle / math.sqrt(10), middle * math.sqrt(10)
    return low / 2.0, high * 2.0


def density_title(picture, gains: Gains) -> str:
    """The density plot's title: when the spectrum was taken and the critical line."""
    mu_c = critical_curvature(gains)
    line = f"μ_c = {mu_c:.3g}" if mu_c > 0 else "B = 0: every mode rings"
    return f"Spectrum at t = {picture.t:.3g} · {line}"


def density_key(gains: Gains | None) -> str:
    """The density plot's key as HTML: the regimes' colours, the critical line and
    the Ritz values' marks."""
    swatches = " &nbsp; ".join(
        f'<span style="color:{REGIME_COLOURS[r]}">■</span> {r}' for r in (*REGIMES, "saddle")
    )
    if gains is None:
        line = "critical μ = B²/4M"
    else:
        mu_c = critical_curvature(gains)
        line = f"critical μ = B²/4M = {mu_c:.3g}" if mu_c > 0 else "no critical line (B = 0)"
    return (
        f'<div class="phviz-modes-density-key">{swatches} &nbsp; <b>┆</b> {line}'
        " &nbsp; ▲ Ritz values (single modes)</div>"
    )


def saddle_title(share: float) -> str:
    return f"μ < 0 (saddles): {share:.0%}" if share > 0 else "μ < 0 (saddles): none"


# ------------------------------------------------------------------ motion
def ends(count: int, shown: int = 3) -> tuple[list[int], list[int]]:
    """Of ``count`` Ritz vectors (ascending μ), the stiffest ``shown`` (stiffest
    first) and the flattest ``shown`` (flattest first)."""
    k = min(shown, count)
    return list(range(count - 1, count - 1 - k, -1)), list(range(k))


def motion_columns(trace, rows: slice | None = None, shown: int = 3) -> dict:
    """Columns t, s0 … (the stiffest vectors' projections, stiffest first) and f0 …
    (the flattest's, flattest first) of ``trace``'s ``rows`` (all by default); NaN
    where a small model has fewer vectors."""
    rows = rows if rows is not None else slice(None)
    t = np.asarray(trace.t[rows], dtype=float)
    q = np.asarray(trace.q[rows], dtype=float)
    stiff, flat = ends(q.shape[1], shown)
    columns = {"t": t}
    for prefix, which in (("s", stiff), ("f", flat)):
        for i in range(shown):
            columns[f"{prefix}{i}"] = q[:, which[i]] if i < len(which) else np.full(len(t), np.nan)
    return columns


def motion_update(trace, sent: tuple | None) -> tuple[dict, bool, tuple]:
    """(columns, grown, now sent) for a page that holds ``sent`` = (version,
    generation, size) of the trace: only the new rows while it grew, else all."""
    now = (trace.version, trace.generation, trace.size)
    if sent is not None and sent[:2] == now[:2] and sent[2] <= now[2]:
        return motion_columns(trace, slice(sent[2], None)), True, now
    return motion_columns(trace), False, now


def mode_labels(picture, gains: Gains, which: list[int]) -> list[tuple[str, str]]:
    """(text, regime) for each of the vectors ``which``: its μ and what it does."""
    mu = mapped(picture.spectrum, gains).vector_values
    labels = []
    for j in which:
        regime = regimes(mu[j], gains)[0]
        labels.append((f"μ = {mu[j]:.3g} ({REGIME_WORDS[regime]})", regime))
    return labels
