"""The port-Hamiltonian vector field on NumPy arrays: the CPU's way to evaluate it.

A small network's field is a backward pass and a few vector operations on a few
hundred numbers; each NumPy call on such a vector costs a fraction of a torch one, so
on the CPU the solvers' fields run here, on the state's memory, and the gradient comes
from the system's route in NumPy (or, for other models, as a view of torch's buffer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .dynamics import momentum_rate
from .gains import as_array, is_zero


def array_field(system) -> Callable[[float, np.ndarray, np.ndarray], None]:
    """``field(t, y, out)`` writing ẏ of [θ; p], or of [θ; p; D; S] with the ledger's
    rates Ḋ = vᵀBv and Ṡ = vᵀu, for ``system`` with the gains it has now."""
    n = system.dim
    gains = system.gains(arrays=True)
    a, c, damping = gains["potential_gain"], gains["weight_decay"], gains["damping"]
    inverse = as_array(system.inverse_inertia)
    decay = None if is_zero(c) else c
    scratch = np.empty(n, dtype=torch.empty(0, dtype=system.dtype).numpy().dtype)
    gradient_into, port_force = system.route.gradient_into, system.port_force

    def field(t, y: np.ndarray, out: np.ndarray) -> None:
        system.check_batch()
        system.nfe += 1
        theta, p, velocity, rate = y[:n], y[n : 2 * n], out[:n], out[n : 2 * n]
        gradient_into(theta, a, rate)
        if decay is not None:
            np.multiply(theta, decay, out=scratch)
            rate += scratch
        np.multiply(p, inverse, out=velocity)
        u = port_force(t, theta, p)
        momentum_rate(rate, velocity, damping, u, out=rate, scratch=scratch)
        if len(out) > 2 * n:  # the ledger's rates: B·v is in ``scratch``
            out[2 * n] = np.dot(scratch, velocity)
            out[2 * n + 1] = 0.0 if u is None else np.dot(velocity, u)

    return field
