"""The Dormand–Prince 5(4) solver for a flat NumPy state, step for step torchdiffeq's.

torchdiffeq's ``dopri5`` spends about as long on its own bookkeeping as on a small
network's vector field: every step builds tableau products, a Python object per
state and the interpolating polynomial, each through torch's per-call dispatch. Here
a step is a few NumPy calls on one array: the stages are rows of it, each new stage
is one matrix–vector product of the tableau (scaled by the step) with the rows before.

It is the same method as torchdiffeq's: the same tableau, first step (Hairer's rule),
error norm (RMS of the error over atol + rtol·max(|y0|, |y1|)), step-size control
(safety 0.9, growth at most 10, shrink at most 0.2 after a rejected step), the
same times of the stages (in the state's precision, as torchdiffeq evaluates them)
and its fourth-order interpolation to the output times. Results agree with
torchdiffeq's to rounding (tested on the linear closed form and on a network).

One thing torchdiffeq's lacks is offered besides: Hairer and Wanner's stabilized
("PI") step-size control (Solving ODEs II, IV.2; their DOPRI5 code's parameter
beta). Where the step is limited by stability rather than accuracy, as in training
that has found a valley, the integral rule's steps overshoot, get rejected and shrink
in turn; the previous step's error in the rule damps that cycle, and far fewer steps
are rejected (``python -m phviz.bench core`` counts the paper's Duffing run both ways).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

# Butcher tableau: the nodes c and, row by row, the weights of the stages before
NODES = (1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
WEIGHTS = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
# fifth-order solution minus the embedded fourth-order one
ERROR = (
    35 / 384 - 1951 / 21600,
    0,
    500 / 1113 - 22642 / 50085,
    125 / 192 - 451 / 720,
    -2187 / 6784 - -12231 / 42400,
    11 / 84 - 649 / 6300,
    -1 / 60,
)
# the state at the step's middle, for the interpolating polynomial
MIDDLE = (
    6025192743 / 30085553152 / 2,
    0,
    51252292925 / 65400821598 / 2,
    -2691868925 / 45128329728 / 2,
    187940372067 / 1594534317056 / 2,
    -1776094331 / 19743644256 / 2,
    11237099 / 235043384 / 2,
)
ORDER = 5
SAFETY, GROWTH, SHRINK = 0.9, 10.0, 0.2
# β of the stabilized control: their code allows up to 0.1 and defaults to 0.04; 0.08
# damps the cycle where 0.04 only halves it (on the paper's Duffing run, 0.08 leaves
# nearly no rejected step). Above about 0.11, errors that stay at the floor of
# 10⁻⁴ while the step shrinks (rounding) would shrink it for ever: each factor is then
# 0.9·(10⁻⁴)^(7β/4 − 1/5), below 1 once β passes 0.108.
STABILIZATION = 0.08

Field = Callable[[float, np.ndarray, np.ndarray], None]


class NonFiniteState(FloatingPointError):
    """A step was accepted into a state that is not finite; ``t``: the last finite time."""

    def __init__(self, t: float):
        super().__init__(f"The state is not finite after t = {t}")
        self.t = t


def _tableau(dtype) -> np.ndarray:
    """Rows over [y0, k0 … k6]: the six stages' inputs, the error and the middle.

    Column 0 (y0's weight) is 1 and is not scaled by the step; the others are.
    """
    rows = np.zeros((8, 8), dtype=np.float64)
    for i, weights in enumerate(WEIGHTS):
        rows[i, 0] = 1.0
        rows[i, 1 : len(weights) + 1] = weights
    rows[6, 1:] = ERROR
    rows[7, 0] = 1.0
    rows[7, 1:] = MIDDLE
    return rows.astype(dtype)


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.dot(x, x)) / x.size)


def dopri5(
    field: Field,
    y0: np.ndarray,
    times: Sequence[float],
    rtol: float,
    atol: float,
    on_step: Callable[[float, float], None] | None = None,
    stabilized: bool = False,
) -> np.ndarray:
    """y at ``times`` (increasing; ``times[0]`` is y0's) of y′ = field(t, y).

    ``field(t, y, out)`` writes dy/dt into ``out``. ``on_step(t0, dt)`` is told of every
    step before it is taken (accepted or not) and may raise to stop the solve. A step
    of size zero raises ``FloatingPointError``, one that would be accepted into a
    state that is not finite ``NonFiniteState``. ``stabilized``: the step size by the
    stabilized control (``Stabilized``), else by torchdiffeq's integral rule.
    Times are float64; the state keeps y0's dtype, as do the stages' times.
    """
    y0 = np.ascontiguousarray(y0)
    dtype, n = y0.dtype, y0.size
    cast = dtype.type
    out = np.empty((len(times), n), dtype)
    out[0] = y0
    # rows: y0, k0 … k6 (k0 = f(y0); k6 = f(y1), the next step's k0), y1
    rows = np.empty((9, n), dtype)
    rows[0] = y0
    tableau, scaled = _tableau(dtype), np.empty((8, 8), dtype)
    stage, scratch, error = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype)
    size0, size1 = np.abs(y0), np.empty(n, dtype)
    t = float(times[0])
    field(cast(t), rows[0], rows[1])
    dt = _first_step(field, t, rows[0], rows[1], rtol, atol, stage, scratch)
    # each stage: its weights (a row of ``scaled``), the rows they weigh, where its
    # input goes (y1 for the last) and its slope; the stages' times, nodes·dt + t0
    stages = [
        (scaled[i, : i + 2], rows[: i + 2], rows[8] if i == 5 else stage, rows[i + 2])
        for i in range(len(NODES))
    ]
    nodes, stage_times = np.array(NODES[:4], dtype), np.empty(4, dtype)
    rtol_, atol_, below = cast(rtol), cast(atol), cast(-np.inf)
    factor = Stabilized() if stabilized else _factor
    j = 1
    while j < len(times):
        if not math.isfinite(dt):
            dt = 0.0
        if on_step is not None:
            on_step(t, dt)
        if not t + dt > t:
            raise FloatingPointError(f"The step size underflowed at t = {t}")
        t1 = t + dt
        t0s, dts = cast(t), cast(dt)
        np.multiply(tableau, dts, out=scaled)
        scaled[:, 0] = tableau[:, 0]
        np.multiply(nodes, dts, out=stage_times)
        stage_times += t0s
        end = np.nextafter(cast(t1), below)  # the nodes at 1: just before t1, as torchdiffeq
        for i, (weights, before, target, slope) in enumerate(stages):
            np.dot(weights, before, out=target)
            field(stage_times[i] if i < 4 else end, target, slope)
        np.dot(scaled[6, 1:], rows[1:8], out=error)
        np.abs(rows[8], out=size1)
        np.maximum(size0, size1, out=scratch)
        scratch *= rtol_
        scratch += atol_
        np.divide(error, scratch, out=scratch)
        ratio = _rms(scratch)
        if ratio <= 1.0:
            if not math.isfinite(np.maximum.reduce(size1)):  # NaN and ∞ both show
                raise NonFiniteState(t)
            while j < len(times) and times[j] <= t1:
                x = cast((times[j] - t) / (t1 - t))
                np.dot(_interpolation(x, scaled[7], dts), rows, out=out[j])
                j += 1
            t = t1
            rows[0] = rows[8]
            rows[1] = rows[7]
            size0, size1 = size1, size0
        dt = dt * factor(ratio)
    return out


def _factor(ratio: float) -> float:
    """The next step's size over this one's, from this step's error ratio (NaN stays NaN)."""
    if ratio == 0.0:
        return GROWTH
    if math.isnan(ratio):
        return math.nan
    shrink = 1.0 if ratio < 1.0 else SHRINK
    return min(GROWTH, max(SAFETY / ratio ** (1.0 / ORDER), shrink))


class Stabilized:
    """Hairer and Wanner's stabilized step-size control, as in their DOPRI5 code.

    The next step's size over this one's is 0.9·err^−(1/5 − 3β/4)·prev^β, kept within
    [0.2, 10], where err is this step's error ratio and prev the last accepted step's
    (at least 10⁻⁴); after a rejection the factor leaves out prev, and the next
    accepted step may not grow.
    """

    def __init__(self, beta: float = STABILIZATION):
        self.beta, self.exponent = beta, 1.0 / ORDER - 0.75 * beta
        self.previous, self.rejected = 1e-4, False

    def __call__(self, ratio: float) -> float:
        if math.isnan(ratio):
            return math.nan
        # 0 ** −e is an error in Python: a step without error grows the most
        part = SAFETY / ratio**self.exponent if ratio > 0.0 else GROWTH
        if ratio > 1.0:
            self.rejected = True
            return max(SHRINK, part)
        factor = min(GROWTH, max(SHRINK, part * self.previous**self.beta))
        if self.rejected:
            factor = min(factor, 1.0)
        self.previous, self.rejected = max(ratio, 1e-4), False
        return factor


def _interpolation(x, middle: np.ndarray, dt) -> np.ndarray:
    """Weights over the rows [y0, k0 … k6, y1] of the quartic through the step at x ∈ [0, 1].

    The polynomial fits y0, y1, the slopes k0 and k6 and the middle state
    y0 + dt·Σ middle·k; its weights on those five, evaluated at x, are combined here.
    """
    x2 = x * x
    x3 = x2 * x
    x4 = x3 * x
    on_y0 = 1 - 11 * x2 + 18 * x3 - 8 * x4
    on_y1 = -5 * x2 + 14 * x3 - 8 * x4
    on_mid = 16 * x2 - 32 * x3 + 16 * x4
    on_f0 = dt * (x - 4 * x2 + 5 * x3 - 2 * x4)
    on_f1 = dt * (x2 - 3 * x3 + 2 * x4)
    weights = np.zeros(9, dtype=middle.dtype)
    weights[0] = on_y0 + on_mid
    weights[1:8] = on_mid * middle[1:]
    weights[1] += on_f0
    weights[7] += on_f1
    weights[8] = on_y1
    return weights


def _first_step(field: Field, t0: float, y0, f0, rtol, atol, y1, f1) -> float:
    """Hairer, Nørsett and Wanner's initial step (Solving ODEs I, II.4), as torchdiffeq's."""
    cast = y0.dtype.type
    scale = cast(atol) + np.abs(y0) * cast(rtol)
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else float(cast(0.01) * cast(d0) / cast(d1))
    np.multiply(f0, cast(h0), out=y1)
    y1 += y0
    field(cast(t0 + h0), y1, f1)
    d2 = _rms((f1 - f0) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / ORDER)
    return float(cast(min(100 * h0, h1)))
