"""Extreme curvatures of the potential, for the critical-damping curves of a gain map.

The potential a·L(θ) + (c/2)·‖θ‖² has Hessian a·∇²L + c·I. Its smallest and largest
eigenvalues bound the modes of the linearised dynamics: a mode of curvature λ (of L)
and inertia m is critically damped at B = 2√((a·λ + c)·m). Below the curve of the
smallest λ every mode oscillates; above the curve of the largest every mode creeps.

Eigenvalues come from Lanczos (``scipy.sparse.linalg.eigsh``) on Hessian-vector
products (``torch.func``): the Hessian itself is never formed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.func import grad, vjp

if TYPE_CHECKING:  # scipy is imported when a curvature is asked for, not with phviz
    from scipy.sparse.linalg import LinearOperator

SMALL = 8  # at most this many parameters: the Hessian column by column, then eigvalsh


def hessian_operator(
    loss: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    *,
    potential_gain: float = 1.0,
    weight_decay: float = 0.0,
) -> LinearOperator:
    """v ↦ ∇²(a·L + (c/2)‖θ‖²)(θ)·v as a float64 ``LinearOperator`` on NumPy vectors."""
    from scipy.sparse.linalg import LinearOperator

    theta = theta.detach()

    def potential(x):
        return potential_gain * loss(x) + 0.5 * weight_decay * (x * x).sum()

    # reverse over reverse: the gradient's graph is built once and pulled back per v
    with torch.enable_grad():
        _, pullback = vjp(grad(potential), theta)

    def matvec(v):
        tangent = torch.as_tensor(np.ravel(v), dtype=theta.dtype).to(theta.device)
        with torch.enable_grad():
            (hv,) = pullback(tangent)
        return hv.detach().to("cpu", torch.float64).numpy()

    n = theta.numel()
    return LinearOperator((n, n), matvec=matvec, dtype=np.float64)


def curvature_extremes(
    loss: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    *,
    potential_gain: float = 1.0,
    weight_decay: float = 0.0,
    tol: float = 1e-6,
    seed: int = 0,
) -> tuple[float, float]:
    """(λ_min, λ_max) of the Hessian of a·L + (c/2)‖θ‖² at θ, by Lanczos.

    ``loss`` maps a flat θ to the scalar loss. A non-convex loss can have λ_min < 0
    (a saddle direction); it is returned as it is. Deterministic for a given ``seed``.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    op = hessian_operator(loss, theta, potential_gain=potential_gain, weight_decay=weight_decay)
    n = op.shape[0]
    if n <= SMALL:  # ARPACK wants more room than a handful of parameters gives it
        dense = np.column_stack([op.matvec(e) for e in np.eye(n)])
        values = np.linalg.eigvalsh(0.5 * (dense + dense.T))
        return float(values[0]), float(values[-1])
    v0 = np.random.default_rng(seed).standard_normal(n)
    extremes = []
    for which in ("SA", "LA"):
        try:
            values = eigsh(op, k=1, which=which, v0=v0, tol=tol, return_eigenvectors=False)
        except ArpackNoConvergence as err:  # keep what it has, NaN if nothing
            values = err.eigenvalues if len(err.eigenvalues) else [math.nan]
        extremes.append(float(values[0]))
    return extremes[0], extremes[1]
