"""Gain-map speed: the default preset's 8×8 map to T = 10 as one batched ensemble,
against the same 64 runs one after another through ``Trainer`` (the same config, solver
and step), which is what a user would otherwise do; one thread, side by side in one run.

``quick``: T = 1 instead of 10, and the single runs timed on 16 of the 64 cells.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..config import make_config
from ..sweep import integrate_members, map_solver
from ..training import Trainer
from . import Table

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


def _trainer_run(config, horizon: float, damping: float, inertia: float) -> None:
    values = {**config.values(), "damping": damping, "inertia": inertia}
    Trainer(make_config(**values)).run(horizon)


def measure(quick: bool = False, *, hand_written: bool | None = None) -> dict:
    """Seconds for the whole map (median of 3) and for its 64 runs through ``Trainer``
    (timed in thirds between the map's repeats; on a quarter of the cells when
    ``quick``, scaled to 64)."""
    base = make_config("default", device="cpu")
    config = make_config(
        **{**base.values(), "solver": map_solver(base), "step_size": base.step_size}
    )
    horizon = 1.0 if quick else 10.0
    members = _members()
    integrate_members(config, {k: v[:2] for k, v in members.items()}, 0.2)  # warm up
    pairs = list(zip(members["damping"], members["inertia"], strict=True))
    timed_pairs = pairs[::4] if quick else pairs
    batched, singles = [], []
    for repeat in range(3):
        batched.append(_timed(lambda: integrate_members(config, members, horizon)))
        for b, m in timed_pairs[repeat::3]:
            singles.append(_timed(lambda b=b, m=m: _trainer_run(config, horizon, b, m)))
    return {
        "horizon": horizon,
        "solver": config.solver,
        "step_size": config.step_size,
        "batched": statistics.median(batched),
        "trainer": statistics.mean(singles) * len(pairs),
        "timed": len(singles),
    }


def tables(quick: bool = False) -> list[Table]:
    torch.set_num_threads(1)
    r = measure(quick)
    ratio = r["trainer"] / r["batched"]
    title = (
        f"A gain map against the same runs through Trainer: preset default (moons, MLP "
        f"2-16-16-2 tanh, full batch), 8 × 8 damping × inertia, T = {r['horizon']:g}, "
        f"{r['solver']} h = {r['step_size']:g}, 1 thread"
    )
    return [
        Table(
            "sweep",
            title,
            ["64 runs as", "seconds", "speed-up"],
            [
                ["one gain map (phviz.sweep's ensemble)", r["batched"], ratio],
                [f"Trainer(...).run() one after another ({r['timed']} timed)", r["trainer"], 1.0],
            ],
            "The map: median of 3. The Trainer runs: mean of the timed runs × 64, timed "
            "between the map's repeats. Target ≥ 10×, goal 20×.",
        )
    ]
