"""Exponential Runge–Kutta solvers: the damped free motion solved exactly, the force
integrated to fourth order, accurate at any damping (fixed step, and adaptive).

Per coordinate the equations are θ̇ = p/m, ṗ = −γp + g with γ = B/m and the force
g = −a∇L(θ) − cθ + u. The linear part L = [[0, 1/m], [0, −γ]] has a closed-form flow,
and the force enters through the φ-functions φ_k(hL) (φ₀(z) = eᶻ, φ_{k+1}(z) =
(φ_k(z) − 1/k!)/z): upper-triangular 2 × 2 matrices with diagonal (1/k!, φ_k(−γh)) and
off-diagonal entry (h/m)·φ_{k+1}(−γh), so scalar φ's of −γh are all a step needs. They
are computed once per solve (``prepare``), stably for any γh.

The spring −cθ stays in the force rather than in L. L then stays triangular with
eigenvalues 0 and −γ, one closed form at any gains, where a damped oscillator's would
split into ringing and creeping cases with φ's of complex arguments. The spring only
adds c to the stiffness a·λ that the force's variation over a step must resolve anyway,
and weight decay is usually the smaller of the two.

The scheme is Hochbruck and Ostermann's five-stage method of stiff order four: its
order holds however large γh is, where Cox and Matthews' ETDRK4 drops to two and
Krogstad's to three. Its step is the exact flow of the linear part driven by the
quadratic that interpolates the force at 0, h/2 and h, so it is exact for a constant
force at any damping; the ledger books that flow's dissipation ∫γp²/m in closed form,
so its residual is the interpolation's error, whatever γh is.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import Plan, Settings, SolverStop
from .splitting import ForceSolver, Interval

SERIES_BELOW = 2.0  # |z| under which φ_k(z), k ≥ 2, is summed as its series
SERIES_TERMS = 24  # 2²⁴/24! < 1e-16: the series' tail is below rounding there

# Hochbruck and Ostermann, "Explicit exponential Runge–Kutta methods for semilinear
# parabolic problems", SIAM J. Numer. Anal. 43 (2005), and "Exponential integrators",
# Acta Numerica 19 (2010): the five-stage method of stiff order four. An entry is a sum
# of terms (w, k, c), each w·φ_k(c·hL); stage i is taken at time c_i·h.
NODES = (0.0, 0.5, 0.5, 1.0, 0.5)
_A52 = ((0.5, 2, 0.5), (-1.0, 3, 1.0), (0.25, 2, 1.0), (-0.5, 3, 0.5))
_MINUS_A52 = tuple((-w, k, c) for w, k, c in _A52)
STAGES = (
    (),
    (((0.5, 1, 0.5),),),
    (((0.5, 1, 0.5), (-1.0, 2, 0.5)), ((1.0, 2, 0.5),)),
    (((1.0, 1, 1.0), (-2.0, 2, 1.0)), ((1.0, 2, 1.0),), ((1.0, 2, 1.0),)),
    (((0.5, 1, 0.5), (-0.25, 2, 0.5)) + _MINUS_A52, _A52, _A52, ((0.25, 2, 0.5),) + _MINUS_A52),
)
WEIGHTS = (
    ((1.0, 1, 1.0), (-3.0, 2, 1.0), (4.0, 3, 1.0)),
    (),
    (),
    ((-1.0, 2, 1.0), (4.0, 3, 1.0)),
    ((4.0, 2, 1.0), (-8.0, 3, 1.0)),
)
SAFETY = 0.9  # of the step the error estimate predicts
MAX_LEVEL = 40  # steps of Δt/2⁴⁰ at the finest


def phi_functions(z, count: int) -> list[np.ndarray]:
    """φ₀(z) … φ_{count−1}(z) for real z ≤ 0 (NumPy, float64), to rounding at any z.

    φ₀ = eᶻ and φ₁ = expm1(z)/z are accurate everywhere. From |z| = ``SERIES_BELOW`` up,
    the recurrence φ_{k+1} = (φ_k − 1/k!)/z loses little (each level divides by |z|);
    below it the series Σ_j z^j/(j+k)! is summed instead, where the recurrence cancels.
    """
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < SERIES_BELOW
    safe = np.where(small, -SERIES_BELOW, z)  # the recurrence's values, kept where large
    phis = [np.exp(z), np.where(z == 0.0, 1.0, np.expm1(z) / np.where(z == 0.0, 1.0, z))]
    upward = phis[1]
    for k in range(2, count):
        upward = (upward - 1.0 / math.factorial(k - 1)) / safe
        series = np.full_like(z, 1.0 / math.factorial(k + SERIES_TERMS))
        for j in range(SERIES_TERMS - 1, -1, -1):  # Horner, the smallest term first
            series = series * z + 1.0 / math.factorial(k + j)
        phis.append(np.where(small, series, upward))
    return phis[:count]


class Table:
    """Coefficients of one step of length h, per coordinate: float64 arrays of the gains'
    broadcast shape (0-d for float gains). The step combines its rows (θ₀, p₀, g₁ … g₅)
    linearly: ``stages[i]`` gives stage i + 2's θ, ``final`` the new (θ, p); ``ledger`` is
    W in the dissipated energy xᵀWx, x = (p₀, g₁ … g₅).
    """

    def __init__(self, damping, inertia, h: float):
        self.h, m = h, _float64(inertia)
        gamma = _float64(damping) / m
        self.shape = np.broadcast_shapes(m.shape, gamma.shape)
        self.phi = {c: phi_functions(-gamma * (c * h), 7) for c in (0.5, 1.0)}
        self.m = m
        self.stages = [
            self._stack([1.0, self._drift(NODES[i])] + [self._apply(a)[0] for a in row])
            for i, row in enumerate(STAGES)
            if i > 0
        ]
        weights = [self._apply(b) for b in WEIGHTS]
        theta = [1.0, self._drift(1.0)] + [b[0] for b in weights]
        p = [0.0, self.phi[1.0][0]] + [b[1] for b in weights]
        self.final = np.stack([self._stack(theta), self._stack(p)])
        self.ledger = self._dissipation()

    def _drift(self, c: float):
        """θ's coefficient of p₀ in e^{c·hL}: (c·h/m)·φ₁(−γch)."""
        return (c * self.h / self.m) * self.phi[c][1]

    def _apply(self, terms):
        """h·Σ w·φ_k(c·hL) applied to (0, g): the coefficients of g in (θ, p)."""
        h, phi = self.h, self.phi
        theta = sum((w * c * h / self.m) * phi[c][k + 1] for w, k, c in terms)
        return h * theta, h * sum(w * phi[c][k] for w, k, c in terms)

    def _stack(self, entries) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(e, np.float64), self.shape) for e in entries])

    def _dissipation(self) -> np.ndarray:
        """W, from ∫γp²/m = ∫P·v ds − ΔK (v = p/m) along the step's own flow.

        The step follows ṗ = −γp + P(s), θ̇ = p/m, P the quadratic through the forces at 0,
        h/2 and h (g₁, g₅, g₄). With its scaled derivatives at 0, G = (P, hP', h²P''), and
        its Taylor coefficients at h, Q = (P, −hP', h²P''), and ∫₀ʰ (h−s)ʲ/j!·sᵏφ_k(−γs) ds
        = h^{j+k+1}φ_{j+k+1}(−γh): m·∫P·v = Σ_j Q_j·(hφ_{j+1}p₀ + h²Σ_i φ_{j+i+2}G_i).
        """
        h, phi = self.h, self.phi[1.0]
        unit = np.eye(6)
        p0, g = unit[0], unit[1:]
        G = (g[0], -3 * g[0] + 4 * g[4] - g[3], 4 * g[0] - 8 * g[4] + 4 * g[3])
        Q = (g[3], -(G[1] + G[2]), G[2])
        work = 0.0
        for j in range(3):
            moment = np.multiply.outer(p0, h * phi[j + 1])
            moment = moment + sum(np.multiply.outer(G[i], h * h * phi[j + i + 2]) for i in range(3))
            work = work + _outer(np.multiply.outer(Q[j], np.ones(self.shape)), moment)
        new_p = np.multiply.outer(p0, phi[0]) + sum(
            np.multiply.outer(G[i], h * phi[i + 1]) for i in range(3)
        )
        old_p = np.multiply.outer(p0, np.ones(self.shape))
        kinetic = 0.5 * (_outer(new_p, new_p) - _outer(old_p, old_p))
        return (work - kinetic) / self.m


def _kind(theta) -> tuple:
    """What a step's coefficients and rows depend on: θ's type, dtype, shape and device."""
    return type(theta), theta.dtype, theta.shape, getattr(theta, "device", None)


def _float64(gain) -> np.ndarray:
    if isinstance(gain, torch.Tensor):
        return gain.detach().to("cpu", torch.float64).numpy()
    return np.asarray(gain, dtype=np.float64)


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per coordinate a ⊗ b, for a and b of shape (6, *shape)."""
    return a[:, None] * b[None, :]


class Step:
    """Steps of one ``Table``, taken on θ as it comes: NumPy arrays or tensors, one run
    (θ of shape n) or an ensemble (members × n, the gains columns).

    With float gains the coefficients are numbers and each combination of rows is one
    product with a vector; per coordinate they multiply the rows and are summed.
    """

    def __init__(self, table: Table):
        self.table, self.key = table, None

    def ready(self, theta) -> None:
        """Coefficients in θ's library, dtype and device, and rows to hold a step."""
        tensors = isinstance(theta, torch.Tensor)
        device = theta.device if tensors else None
        self.key = _kind(theta)
        table = self.table
        self.scalar = table.shape == () and theta.ndim == 1
        # numbers multiply a matrix of rows; per coordinate they broadcast against θ
        shape = () if self.scalar else (1,) * (theta.ndim - len(table.shape)) + table.shape

        def convert(a: np.ndarray, axes: int):
            a = a.reshape(a.shape[:axes] + shape)
            return (
                torch.as_tensor(a, dtype=theta.dtype, device=device)
                if tensors
                else a.astype(theta.dtype)
            )

        self.stages = [convert(c, 1) for c in table.stages]
        self.final = convert(table.final, 2)
        self.ledger = convert(table.ledger, 2)
        make = torch.empty if tensors else np.empty
        kwargs = dict(dtype=theta.dtype, device=device) if tensors else dict(dtype=theta.dtype)
        self.rows = make((7,) + tuple(theta.shape), **kwargs)
        self.xp = torch if tensors else np

    def combine(self, coefficients, rows):
        """Σ coefficient·row over the leading axis of ``rows`` (per output, if any)."""
        if self.scalar:
            return coefficients @ rows if self.xp is torch else np.dot(coefficients, rows)
        return (coefficients * rows).sum(coefficients.ndim - rows.ndim)

    def dissipated(self, rows):
        """xᵀWx per coordinate, summed over θ's last axis (one value per member)."""
        x = rows[1:]
        if self.scalar:
            gram = x @ x.T
            return (self.ledger * gram).sum() if self.xp is torch else np.vdot(self.ledger, gram)
        return (self.ledger * x[:, None] * x[None, :]).sum((0, 1)).sum(-1)

    def __call__(self, theta, p, force, u, opening=None):
        """One step from (θ, p): (θ, p, dissipated energy, rows). ``force`` is held over
        the step's batch; u (None, or held over the step) adds to it. ``opening``: the
        force at θ with u, where a step from the same state already has it."""
        if self.key != _kind(theta):
            self.ready(theta)
        rows = self.rows
        rows[0], rows[1] = theta, p
        stage = theta
        for i in range(5):
            if i > 0:
                stage = self.combine(self.stages[i - 1], rows[: i + 2])
            elif opening is not None:
                rows[2] = opening
                continue
            rows[i + 2] = force(stage)
            if u is not None:
                rows[i + 2] += u
        new = self.combine(self.final, rows)
        return new[0], new[1], self.dissipated(rows), rows

    def error_norm(self, start, new, other, rtol: float, atol: float) -> float:
        """RMS over θ and p of new − other in units of atol + rtol·|y| (each a pair (θ, p));
        the largest member's where there are several, members not finite left to the
        ensemble's own freezing."""
        xp = self.xp
        start, new, other = (xp.stack(list(pair)) for pair in (start, new, other))
        ratio = (new - other) / (atol + rtol * xp.maximum(abs(start), abs(new)))
        norm = ((ratio * ratio).mean((0, -1))) ** 0.5
        if norm.ndim == 0:
            return float(norm)
        finite = norm[xp.isfinite(norm)]
        return float(finite.max()) if len(finite) else math.inf


class ExponentialRK(ForceSolver):
    """Hochbruck and Ostermann's exponential Runge–Kutta method at a fixed step."""

    name = "exponential"
    summary = "fixed step, exponential Runge–Kutta 4: damping exact, accurate at any damping"

    def prepare(self, gains: dict, h: float) -> Step:
        return Step(Table(gains["damping"], gains["inertia"], h))

    def step(self, theta, p, force, h, prepared, u):
        return prepared(theta, p, force, u)[:3]


class AdaptiveExponentialRK(ExponentialRK):
    """The same method with steps of Δt/2ᵏ, each checked by step doubling: two half steps
    are taken and kept where they differ from one full step by less than rtol and atol
    per unit step (so an interval's steps together keep them). Doubling, unlike an
    embedded companion, also sees the error of a fast transient at a step's start (the
    momenta relaxing within m/B when γh ≫ 1), which every stage after the first misses.
    Powers of two end every interval on a step, and each level's φ's are computed once
    per solve. Every interval starts with a step of Δt, so its steps do not depend on
    where a run was paused. Members of an ensemble share steps, each within tolerance."""

    name = "adaptive_exponential"
    summary = "adaptive exponential Runge–Kutta 4 (step doubling): tolerances at any damping"
    adaptive = True

    def grid(self, plan: Plan, settings: Settings) -> tuple[int, float]:
        return 1, plan.interval

    def prepare(self, gains: dict, h: float) -> dict:
        damping, inertia = gains["damping"], gains["inertia"]
        return _Levels(lambda level: Step(Table(damping, inertia, h / 2**level)))

    def advance(self, system, theta, p, force, levels, interval: Interval):
        plan, settings = interval.plan, interval.settings
        start = plan.t0 + interval.k * plan.interval
        level = done = tried = 0  # ``done`` full steps of Δt/2^level taken so far
        dissipated = supplied = 0.0
        while done < 1 << level:
            t = start + done * plan.interval / 2**level
            tried += 1
            if tried > settings.max_steps:
                raise SolverStop("steps", t)
            new_theta, new_p, drained, work, error = self._doubled(
                system, theta, p, force, levels, level, t, settings
            )
            if error <= 1.0:
                dissipated, supplied = dissipated + drained, supplied + work
                theta, p, done = new_theta, new_p, done + 1
                up = min(_levels_up(error), level, (done & -done).bit_length() - 1)
                level, done = level - up, done >> up
            else:
                down = _levels_down(error)
                level, done = level + down, done << down
                if level > MAX_LEVEL:
                    raise SolverStop("underflow", t)
        return theta, p, dissipated, supplied

    def _doubled(self, system, theta, p, force, levels, level: int, t: float, settings):
        """Two half steps of Δt/2^level from time t: (θ, p, dissipated, supplied, error
        per unit step against one full step, in units of the tolerances)."""
        u = system.port_force(t, theta, p)
        full_theta, full_p, _, rows = levels[level](theta, p, force, u)
        half = levels[level + 1]
        mid_theta, mid_p, drained, _ = half(theta, p, force, u, opening=rows[2])
        work = 0.0 if u is None else (u * (mid_theta - theta)).sum(-1)
        v = system.port_force(t + half.table.h, mid_theta, mid_p)
        new_theta, new_p, more, _ = half(mid_theta, mid_p, force, v)
        if v is not None:
            work = work + (v * (new_theta - mid_theta)).sum(-1)
        error = half.error_norm(
            (theta, p), (new_theta, new_p), (full_theta, full_p), settings.rtol, settings.atol
        )
        # Richardson: of a fourth-order pair's difference, the half steps' error is 1/15
        return new_theta, new_p, drained + more, work, error * 2**level / 15


class _Levels(dict):
    """Steps of Δt/2^level by level, each made when first asked for."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, level: int) -> Step:
        self[level] = step = self.make(level)
        return step


def _levels_up(error: float) -> int:
    """How many times the step may double after an accepted one (at most twice): the
    full step's local error grows as h⁵, so the estimate per unit step as h⁴."""
    factor = SAFETY * error ** (-1 / 4) if error > 0 else math.inf
    return 0 if factor < 2 else 1 if factor < 4 else 2


def _levels_down(error: float) -> int:
    """How many times a rejected step halves (at least once; 2⁴ if not finite)."""
    if not math.isfinite(error):
        return 4
    return max(1, math.ceil(math.log2(error ** (1 / 4) / SAFETY)))
