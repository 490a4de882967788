"""Gain-map speed: an 8×8 grid of the default preset to T = 10 as one batched ensemble
against the same 64 runs one after another, side by side in one process, 1 thread.

The single runs are measured two ways:

1. the sweep's own code with one member at a time (``integrate_members`` on a 1×1
   grid): the same integrator, the same single force evaluation per step, only the
   batching differs;
2. the engine's step in a plain loop (``conformal_symplectic_step`` with
   ``system.potential_gradient``, two force evaluations per step, as written), the
   per-run cost of a single run without the ensemble's reuse of the closing force;
   timed on 16 of the 64 cells (every run takes the same number of steps) and
   scaled to 64.

``quick``: T = 1 instead of 10.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..config import make_config
from ..dynamics import conformal_symplectic_step
from ..sweep import integrate_members
from ..training import Trainer

DAMPING = np.geomspace(0.1, 6.4, 8)
INERTIA = np.geomspace(0.25, 4.0, 8)


def _members() -> dict[str, list[float]]:
    return {
        "damping": [float(b) for b in DAMPING for _ in INERTIA],
        "inertia": [float(m) for _ in DAMPING for m in INERTIA],
    }


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _engine_run(config, horizon: float, damping: float, inertia: float) -> None:
    trainer = Trainer(config)
    system = trainer.system
    system.set_gains(damping=damping, inertia=inertia)
    theta, p = trainer.initial_theta.clone(), torch.zeros_like(trainer.initial_theta)

    def force(x):
        return -system.potential_gradient(x)

    steps = round(horizon / config.step_size)
    for _ in range(steps):
        theta, p, _ = conformal_symplectic_step(theta, p, force, config.step_size, damping, inertia)


def measure(quick: bool = False) -> dict:
    config = make_config("default", device="cpu")
    horizon = 1.0 if quick else 10.0
    members = _members()
    integrate_members(config, {k: v[:2] for k, v in members.items()}, 0.2)  # warm up
    batched, singles, engine = [], [], []
    pairs = list(zip(members["damping"], members["inertia"], strict=True))
    for repeat in range(3):  # the single runs in thirds between the batched repeats
        batched.append(_timed(lambda: integrate_members(config, members, horizon)))
        for b, m in pairs[repeat::3]:
            one = {"damping": [b], "inertia": [m]}
            singles.append(_timed(lambda one=one: integrate_members(config, one, horizon)))
        for b, m in pairs[::4][repeat::3]:
            engine.append(_timed(lambda b=b, m=m: _engine_run(config, horizon, b, m)))
    n = len(pairs)
    return {
        "horizon": horizon,
        "batched": statistics.median(batched),
        "singles": sum(singles),
        "singles_median": statistics.median(singles) * n,
        "engine": statistics.median(engine) * n,
        "engine_runs": len(engine),
    }


def report(quick: bool = False) -> None:
    torch.set_num_threads(1)
    r = measure(quick)
    print(
        f"gain map, preset default (moons, MLP 2-16-16-2 tanh, full batch), 8×8 damping × "
        f"inertia, T = {r['horizon']:g}, h = 0.01, 1 thread:"
    )
    print(f"  batched ensemble of 64: {r['batched']:.2f} s (median of 3)")
    print(
        f"  64 single runs, same code one member at a time: {r['singles']:.2f} s "
        f"(64 × median {r['singles_median']:.2f} s) · ratio {r['singles'] / r['batched']:.1f}×"
    )
    print(
        f"  64 single runs, engine step in a plain loop: {r['engine']:.2f} s "
        f"(64 × median of {r['engine_runs']}) · ratio {r['engine'] / r['batched']:.1f}×"
        " (goal ≥ 5×, 20×)"
    )
