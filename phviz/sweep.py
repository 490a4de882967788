"""Gain maps: a training run over a grid of two gains, integrated as one ensemble.

    python -m phviz sweep --preset default --damping 0.1,0.4,1.6,6.4 --inertia 0.25,1,4 \\
        --horizon 10 --out sweep.json --png map.png

Every cell is the run of ``Trainer(config)`` with that cell's gains: the same data,
batches in the same order, initial weights and momenta. The cells are the members of
one ``Ensemble`` that a solver of the table integrates together (``config.solver`` when
it can integrate ensembles, else the conformal leapfrog at ``config.step_size``). A
member whose state becomes NaN or infinite is flagged ``diverged`` and frozen; the
others go on untouched.

With ``scheduler="tcp://host:8786"`` the grid is cut into chunks of members that run
on a Dask cluster (``dask.distributed``, the ``dask`` extra; the workers need phviz),
otherwise everything runs in this process. Either way the result is an
``xarray.Dataset``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .config import TrainingConfig, make_config
from .curvature import curvature_extremes
from .ensemble import Ensemble
from .gains import GAINS, check_gain_value
from .solvers import Plan, Settings, get_solver
from .training import Trainer
from .training.batches import BatchSchedule

if TYPE_CHECKING:  # xarray is imported when a map is made, not with phviz
    import xarray as xr

FALLBACK_SOLVER = "conformal_leapfrog"  # when the config's solver cannot run ensembles
DEFAULT_TARGET_FRACTION = 0.01  # of the initial training loss

Progress = Callable[[int, int], None]  # (member-intervals done, in all)


def check_axes(axes: dict) -> dict[str, list[float]]:
    """The two gain axes as lists of checked floats, or a ``ValueError``/``TypeError``."""
    unknown = [name for name in axes if name not in GAINS]
    if unknown:
        raise TypeError(f"Unknown gain: {unknown[0]!r} (gains are {', '.join(GAINS)})")
    if len(axes) != 2:
        given = ", ".join(axes) if axes else "none"
        raise ValueError(
            f"A gain map needs exactly two gain axes, got {len(axes)} ({given}); "
            f"choose two of {', '.join(GAINS)}"
        )
    checked = {}
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"Invalid {name} axis: {values!r} (expected a list of values)")
        values = [check_gain_value(name, v) for v in values]
        if not values:
            raise ValueError(f"Invalid {name} axis: [] (give at least one value)")
        checked[name] = values
    return checked


def map_solver(config: TrainingConfig) -> str:
    """The solver a gain map of ``config`` integrates with."""
    return config.solver if get_solver(config.solver).ensemble else FALLBACK_SOLVER


def integrate_members(
    config: TrainingConfig | dict,
    gains: dict[str, list[float]],
    horizon: float,
    progress: Progress | None = None,
    dataset=None,
) -> dict[str, np.ndarray]:
    """Integrate the members whose gains are ``gains`` (name → one value per member).

    Gains not named come from ``config``; the data from ``dataset`` (a ``Dataset``),
    else from ``config``. Returns NumPy arrays: ``t`` (records), ``train_loss`` and
    ``hamiltonian`` (members × records), ``diverged`` (members) and ``final_theta``
    (members × parameters). A plain function of picklable arguments, so that Dask can
    run it on a worker.
    """
    if isinstance(config, dict):
        config = make_config(**config)
    trainer = Trainer(config, dataset=dataset)
    ensemble = Ensemble(trainer, gains)
    ds = trainer.dataset
    interval = config.switching_interval
    n = max(0, round(horizon / interval))
    train_loss = np.full((ensemble.count, n + 1), np.nan)
    hamiltonian = np.full((ensemble.count, n + 1), np.nan)
    schedule = BatchSchedule.of(config, ds)
    schedule.hold(ensemble)
    theta, p = ensemble.start(trainer.initial_theta, trainer.initial_momentum)
    final = [theta]

    def record(k: int, theta, p, losses) -> None:
        full = losses if schedule.full else ensemble.losses_on(ds.x_train, ds.y_train, theta)
        energy = ensemble.potential(theta, losses) + ensemble.kinetic(p)
        full, energy = _numpy(full), _numpy(energy)
        keep = ensemble.alive & np.isfinite(full) & np.isfinite(energy)
        train_loss[keep, k] = full[keep]
        hamiltonian[keep, k] = energy[keep]

    def sink(end) -> None:
        k = len(final)
        record(k, end.theta, end.p, end.loss)
        final.append(end.theta)
        if progress is not None:
            progress(k * ensemble.count, n * ensemble.count)

    record(0, theta, p, ensemble.losses(theta))
    solver = get_solver(map_solver(config))
    plan = Plan(0.0, interval, n, None if schedule.full else schedule)
    with torch.no_grad():
        solver.integrate(ensemble, theta, p, plan, Settings.of(config), sink)
    _, h = Settings.of(config).fixed_steps(interval, 0.0)
    return {
        "t": np.array([round(k * interval, 12) for k in range(n + 1)]),
        "train_loss": train_loss,
        "hamiltonian": hamiltonian,
        "diverged": ~ensemble.alive,
        "final_theta": _numpy(final[-1]),
        "step_size": np.array(h),
    }


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def sweep(
    config: TrainingConfig | None = None,
    *,
    horizon: float | None = None,
    target: float | None = None,
    scheduler=None,
    chunk_size: int | None = None,
    curvature: bool = True,
    progress: Progress | None = None,
    dataset=None,
    **axes,
) -> xr.Dataset:
    """Train over a grid of two gains; e.g. ``sweep(config, damping=[...], inertia=[...])``.

    Any two of damping, inertia, potential_gain and weight_decay are the axes (keyword =
    gain, value = list); the other gains come from ``config``. Each cell is the run of
    ``Trainer(config)`` with those gains, by ``map_solver(config)``, up to ``horizon``
    (default ``config.horizon``), recorded at every interval's end.

    ``target``: the training loss whose first crossing is ``time_to_target`` (default 1 %
    of the initial loss). ``scheduler``: a Dask scheduler address or ``Client``; the grid
    then runs in chunks of ``chunk_size`` members (default: one chunk per worker thread).
    ``curvature``: also find the extreme curvatures of L at the initial weights and at the
    final weights of the best cell (Lanczos), stored in the attributes.
    ``progress(done, total)`` is called as member-intervals complete; an exception
    raised there stops the sweep (and propagates), which is how a view cancels one.
    ``dataset``: a ``Dataset`` to train on in place of the one ``config`` names.
    """
    config = config if config is not None else TrainingConfig()
    grid = check_axes(axes)
    horizon = config.horizon if horizon is None else float(horizon)
    if not (math.isfinite(horizon) and horizon >= 0):
        raise ValueError(f"Invalid horizon: {horizon!r} (must be finite and >= 0)")
    if target is not None and not (isinstance(target, (int, float)) and target > 0):
        raise ValueError(f"Invalid target: {target!r} (must be a loss > 0)")
    (first, values1), (second, values2) = grid.items()
    members = {
        first: [v for v in values1 for _ in values2],
        second: [v for _ in values1 for v in values2],
    }
    started = time.perf_counter()
    if scheduler is None:
        result = integrate_members(config, members, horizon, progress, dataset)
    else:
        result = _on_dask(scheduler, config, members, horizon, chunk_size, progress, dataset)
    wall = time.perf_counter() - started
    return _dataset(config, grid, result, target, wall, curvature, dataset)


def _on_dask(scheduler, config, members, horizon, chunk_size, progress, dataset) -> dict:
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        n = len(next(iter(members.values())))
        if chunk_size is None:
            chunk_size = math.ceil(n / max(1, sum(client.nthreads().values())))
        if not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ValueError(f"Invalid chunk_size: {chunk_size!r} (must be a whole number >= 1)")
        starts = list(range(0, n, chunk_size))
        values = config.values()
        futures = {
            client.submit(
                integrate_members,
                values,
                {name: v[s : s + chunk_size] for name, v in members.items()},
                horizon,
                dataset=dataset,
                pure=False,
            ): s
            for s in starts
        }
        parts, done = {}, 0
        for future in as_completed(futures):
            part = future.result()
            parts[futures[future]] = part
            done += len(part["diverged"]) * (len(part["t"]) - 1)
            if progress is not None:
                progress(done, n * (len(part["t"]) - 1))
    finally:
        if client is not scheduler:
            client.close()
    ordered = [parts[s] for s in starts]
    first = ordered[0]
    return {
        "t": first["t"],
        "step_size": first["step_size"],
        **{
            key: np.concatenate([part[key] for part in ordered])
            for key in ("train_loss", "hamiltonian", "diverged", "final_theta")
        },
    }


def _dataset(config, grid, result, target, wall, curvature, dataset) -> xr.Dataset:
    import xarray as xr

    (first, values1), (second, values2) = grid.items()
    shape = (len(values1), len(values2))
    t = result["t"]
    loss = result["train_loss"].reshape(*shape, len(t))
    initial = float(loss.reshape(-1, len(t))[0, 0])
    target = DEFAULT_TARGET_FRACTION * initial if target is None else float(target)
    diverged = result["diverged"].reshape(shape)
    final = np.where(diverged, np.nan, loss[..., -1])
    dims, dims_t = (first, second), (first, second, "t")
    ds = xr.Dataset(
        {
            "train_loss": (dims_t, loss, {"long_name": "training loss"}),
            "hamiltonian": (dims_t, result["hamiltonian"].reshape(*shape, len(t))),
            "final_train_loss": (dims, final),
            "time_to_target": (dims, time_to_target(loss, t, target)),
            "diverged": (dims, diverged),
        },
        coords={first: values1, second: values2, "t": t},
        attrs={
            "config": json.dumps(config.values()),
            "solver": map_solver(config),
            "step_size": float(result["step_size"]),
            "switching_interval": config.switching_interval,
            "horizon": float(t[-1]),
            "target": target,
            "initial_train_loss": initial,
            "wall_seconds": wall,
        },
    )
    if curvature:
        ds.attrs.update(_curvatures(config, final, result["final_theta"], dataset))
    return ds


def time_to_target(loss: np.ndarray, t: np.ndarray, target: float) -> np.ndarray:
    """First t at which ``loss`` (… × len(t)) is ≤ ``target``; NaN where it never is."""
    reached = np.nan_to_num(loss, nan=np.inf) <= target
    first = reached.argmax(-1)
    return np.where(reached.any(-1), t[first], np.nan)


def _curvatures(config, final_loss: np.ndarray, final_theta: np.ndarray, dataset) -> dict:
    """λ_min, λ_max of ∇²L on the training set at the initial weights and at the best
    cell's final weights (the cell of least final loss), plus which cell that was."""
    trainer = Trainer(config, dataset=dataset)
    system, ds = trainer.system, trainer.dataset
    system.set_batch(ds.x_train, ds.y_train)
    lo, hi = curvature_extremes(system.loss, trainer.initial_theta)
    out = {"curvature_min_initial": lo, "curvature_max_initial": hi}
    if np.isfinite(final_loss).any():
        best = int(np.nanargmin(final_loss.reshape(-1)))
        theta = torch.as_tensor(final_theta[best]).to(trainer.initial_theta)
        lo, hi = curvature_extremes(system.loss, theta)
        out.update(curvature_min_final=lo, curvature_max_final=hi, curvature_final_cell=best)
    return out
