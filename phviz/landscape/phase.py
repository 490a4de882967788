"""Phase portraits: the energy of one coordinate's (θ_i, p_i) slice, and its recorded path."""

from __future__ import annotations

import numpy as np
import torch

from .grid import grid_points
from .inputs import as_matrix
from .naming import parameter_index
from .potentials import Potential


def phase_portrait(
    potential: Potential,
    theta,
    index: int,
    *,
    q_extent: tuple[float, float],
    p_extent: tuple[float, float],
    resolution=51,
    inertia: float = 1.0,
):
    """Energy of the one-dimensional slice through ``theta`` along coordinate ``index``.

    Returns (qs, ps, H) with H.shape == (len(ps), len(qs)) and
    H[a, b] = V(θ with θ_index = qs[b]) + ps[a]² / (2·m), the other coordinates and
    momenta frozen (their kinetic energy, a constant, left out). Its level sets are
    the paths (θ_i, p_i) would follow without damping if the rest stood still.
    ``inertia`` is m_i (a float, or the per-parameter tensor of the system).
    """
    row = as_matrix(theta, potential.layout.size, name="theta")[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        index = parameter_index(potential.layout, index)
    if not 0 <= index < row.numel():
        raise ValueError(f"Invalid parameter index: {index} (θ has {row.numel()} entries)")
    m = (
        float(inertia[index])
        if isinstance(inertia, torch.Tensor) and inertia.dim()
        else float(inertia)
    )
    if not m > 0:
        raise ValueError(f"Invalid inertia: {m!r} (must be > 0)")
    qs, ps, _ = grid_points((*q_extent, *p_extent), resolution)
    line = row.repeat(len(qs), 1).to(torch.float64)
    line[:, index] = torch.from_numpy(qs)
    potential_q = potential(line)
    kinetic_p = ps * ps / (2.0 * m)
    return qs, ps, kinetic_p[:, None] + potential_q[None, :]


def trainer_phase_portrait(
    trainer, index, *, q_extent, p_extent, resolution=51, theta=None, batch: str = "train"
):
    """``phase_portrait`` for a Trainer, with its inertia and gains.

    ``theta`` (e.g. a Record's ``.theta``) defaults to the trainer's current θ;
    ``batch`` is 'train' (the whole training set) or 'current' (the batch held).
    """
    system = trainer.system
    theta = trainer.xi[: system.dim] if theta is None else theta
    potential = Potential.from_trainer(trainer, batch=batch)
    index = parameter_index(system.layout, index)
    return phase_portrait(
        potential,
        theta,
        index,
        q_extent=q_extent,
        p_extent=p_extent,
        resolution=resolution,
        inertia=system.inertia,
    )


def phase_curve(records, index: int, tracked) -> tuple[np.ndarray, np.ndarray]:
    """(θ_i(t), p_i(t)) of coordinate ``index`` from Records' sampled coordinates.

    Records carry θ and p at the trainer's ``tracked`` indices only (``theta_sample``,
    ``p_sample``); ``index`` must be one of them.
    """
    tracked = np.asarray(tracked).reshape(-1)
    where = np.flatnonzero(tracked == index)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not len(where):
        raise ValueError(
            f"Invalid coordinate: {index!r} is not tracked (tracked: {tracked.tolist()})"
        )
    k = int(where[0])
    q = np.array([float(r.theta_sample[k]) for r in records])
    p = np.array([float(r.p_sample[k]) for r in records])
    return q, p
