"""Gain maps: many training runs over a grid of two gains, integrated as one ensemble.

    python -m phviz sweep --preset default --damping 0.1,0.4,1.6,6.4 --inertia 0.25,1,4 \\
        --horizon 10 --out sweep.json --png map.png

Every member of the grid starts from the same weights and data as ``Trainer(config)``
and sees the same batches in the same order; only its gains differ. The members are
stacked into one tensor θ of shape (members, parameters) and integrated together with
the engine's fixed-step conformal-symplectic step (``conformal_symplectic_step``),
the gradient of all members coming from one ``torch.func.vmap``-ed forward pass and
one backward pass. A member whose state becomes NaN or infinite is flagged
``diverged`` and frozen at its last finite record; the others go on untouched.

With ``scheduler="tcp://host:8786"`` the grid is cut into chunks of members that run
on a Dask cluster (``dask.distributed``; the workers need phviz installed), otherwise
everything runs in this process. Either way the result is an ``xarray.Dataset``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.func import vmap

from .config import TrainingConfig, make_config
from .curvature import curvature_extremes
from .dynamics import check_gain_value, conformal_symplectic_step, critical_damping
from .training import Trainer

if TYPE_CHECKING:  # xarray is imported when a map is made, not with phviz
    import xarray as xr

GAINS = ("damping", "inertia", "potential_gain", "weight_decay")
SOLVER = "conformal_leapfrog"
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


def batch_order(trainer: Trainer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches a ``Trainer`` built from the same config holds, interval after interval.

    Full batch: the training set for ever. Mini-batches: a fresh permutation per epoch
    from a generator seeded with ``data_seed + 1``, as the Trainer draws them.
    """
    ds = trainer.dataset
    if trainer.full_batch:
        while True:
            yield ds.x_train, ds.y_train
    generator = torch.Generator().manual_seed(trainer.config.data_seed + 1)
    b = trainer.batch_size
    while True:
        order = torch.randperm(trainer.n_train, generator=generator)
        for k in range(trainer.batches_per_epoch):
            idx = order[k * b : (k + 1) * b].to(ds.x_train.device)
            yield ds.x_train[idx], ds.y_train[idx]


class EnsembleForce:
    """force(Θ) = −(a∇L(θ_k) + cθ_k) for every member row θ_k of Θ, on one batch.

    One vmap-ed forward pass of the engine's ``system.forward`` and one backward pass
    give all members' gradients (the members are independent, so the gradient of the
    sum of their losses is each one's own gradient). The last evaluation is kept: the
    leapfrog's closing force is the next step's opening one, and the losses it
    computed serve the record at the end of an interval.
    """

    def __init__(self, system, potential_gain: torch.Tensor, weight_decay: torch.Tensor):
        self.system = system
        self.potential_gain = potential_gain
        self.weight_decay = weight_decay
        self.moving = torch.ones_like(potential_gain)  # 0 for frozen members
        self._forward = vmap(system.forward, in_dims=(0, None))
        self._loss = vmap(system.loss_fn, in_dims=(0, None))
        self.set_batch(None, None)

    def set_batch(self, inputs, targets) -> None:
        self.inputs, self.targets = inputs, targets
        self._last = None  # (θ, losses, force)

    def losses(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ_k) of every member on the batch held."""
        if self._last is not None and self._last[0] is theta:
            return self._last[1]
        with torch.no_grad():
            return self._loss(self._forward(theta, self.inputs), self.targets)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        if self._last is not None and self._last[0] is theta:
            return self._last[2]
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            losses = self._loss(self._forward(leaf, self.inputs), self.targets)
            (gradient,) = torch.autograd.grad(losses.sum(), leaf)
        force = -(self.potential_gain * gradient + self.weight_decay * theta) * self.moving
        self._last = (theta, losses.detach(), force)
        return force


def integrate_members(
    config: TrainingConfig | dict,
    gains: dict[str, list[float]],
    horizon: float,
    progress: Progress | None = None,
    dataset=None,
) -> dict[str, np.ndarray]:
    """Integrate the members whose gains are ``gains`` (name → one value per member).

    Gains not named come from ``config``; the data from ``dataset`` (a ``Dataset``),
    else from ``config``. Returns NumPy arrays: ``t`` (records),
    ``train_loss`` and ``hamiltonian`` (members × records), ``diverged`` (members)
    and ``final_theta`` (members × parameters). A plain function of picklable
    arguments, so that Dask can run it on a worker.
    """
    if isinstance(config, dict):
        config = make_config(**config)
    trainer = Trainer(config, dataset=dataset)
    system, like = trainer.system, trainer.initial_theta
    n_members = len(next(iter(gains.values())))
    column = {
        name: torch.tensor(
            gains.get(name, [getattr(config, name)] * n_members), dtype=like.dtype
        ).to(like.device)[:, None]
        for name in GAINS
    }
    damping, inertia = column["damping"], column["inertia"]
    force = EnsembleForce(system, column["potential_gain"], column["weight_decay"])
    theta = like.expand(n_members, -1).clone()
    p = torch.zeros_like(theta)
    interval = config.switching_interval
    steps = max(1, round(interval / config.step_size))
    h = interval / steps
    n_records = max(0, round(horizon / interval)) + 1
    train_loss = np.full((n_members, n_records), np.nan)
    hamiltonian = np.full((n_members, n_records), np.nan)
    alive = torch.ones(n_members, dtype=torch.bool, device=like.device)
    batches = batch_order(trainer)
    ds = trainer.dataset

    def record(k: int) -> None:
        batch_loss = force.losses(theta)
        loss = batch_loss if trainer.full_batch else _member_losses(force, theta, ds)
        energy = column["potential_gain"][:, 0] * batch_loss + 0.5 * (
            column["weight_decay"] * theta * theta + p * p / inertia
        ).sum(-1)
        finite = torch.isfinite(loss) & torch.isfinite(energy)
        alive_now = (alive & finite).cpu().numpy()
        train_loss[alive_now, k] = loss.cpu().numpy()[alive_now]
        hamiltonian[alive_now, k] = energy.cpu().numpy()[alive_now]

    force.set_batch(*next(batches))
    record(0)
    for k in range(1, n_records):
        if k > 1:
            force.set_batch(*next(batches))
        start = theta, p
        for _ in range(steps):
            theta, p, _ = conformal_symplectic_step(theta, p, force, h, damping, inertia)
        alive = _freeze_diverged(force, alive, theta, p, inertia)
        if not bool(alive.all()):
            keep = alive[:, None]
            theta = torch.where(keep, theta, start[0])
            p = torch.where(keep, p, torch.zeros_like(p))
        record(k)
        if progress is not None:
            progress(k * n_members, (n_records - 1) * n_members)
    return {
        "t": np.array([round(k * interval, 12) for k in range(n_records)]),
        "train_loss": train_loss,
        "hamiltonian": hamiltonian,
        "diverged": ~alive.cpu().numpy(),
        "final_theta": theta.detach().cpu().numpy(),
        "step_size": np.array(h),
    }


def _freeze_diverged(force: EnsembleForce, alive, theta, p, inertia) -> torch.Tensor:
    """Members whose state and energy are still finite after an interval; the others
    stop moving from now on."""
    energy = force.losses(theta) + (theta * theta).sum(-1) + (p * p / inertia).sum(-1)
    finite = torch.isfinite(theta).all(-1) & torch.isfinite(p).all(-1) & torch.isfinite(energy)
    still = alive & finite
    force.moving = still[:, None].to(theta.dtype)
    return still


def _member_losses(force: EnsembleForce, theta, ds) -> torch.Tensor:
    """Every member's loss on the whole training set (the batch held stays held)."""
    held = force.inputs, force.targets
    force.set_batch(ds.x_train, ds.y_train)
    try:
        return force.losses(theta)
    finally:
        force.set_batch(*held)


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
    ``Trainer(config)`` with those gains and solver ``conformal_leapfrog`` (step
    ``config.step_size``, ``round(Δt/h)`` steps per switching interval Δt, records at
    interval ends) up to ``horizon`` (default ``config.horizon``).

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
            "solver": SOLVER,
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


def critical_curves(ds: xr.Dataset, samples: int = 200) -> list[dict]:
    """The critical-damping curves over a map whose axes include damping.

    One curve per stored curvature (λ_min and λ_max, initial and final): B = 2√((a·λ +
    c)·m) against the other axis, sampled log-evenly across the map, the remaining gains
    from the config. Each curve: ``{"label", "curvature", <axis>: array, "damping": array}``.
    Where a·λ + c ≤ 0 (a saddle direction, common at a network's initial weights) the
    curve is B = 0: that direction never oscillates, and nothing lies below it.
    Empty when damping is not an axis.
    """
    axes = [d for d in ds.final_train_loss.dims]
    if "damping" not in axes:
        return []
    other = axes[1] if axes[0] == "damping" else axes[0]
    config = json.loads(ds.attrs["config"])
    edges = cell_edges(ds[other].values)  # across the whole map, not only cell centres
    values = np.geomspace(edges[0], edges[-1], samples)
    curves = []
    for key, label in (
        ("curvature_min_initial", "λ_min initial"),
        ("curvature_max_initial", "λ_max initial"),
        ("curvature_min_final", "λ_min final"),
        ("curvature_max_final", "λ_max final"),
    ):
        if key not in ds.attrs:
            continue
        gains = {g: config[g] for g in ("inertia", "potential_gain", "weight_decay")}
        gains[other] = values
        damping = critical_damping(ds.attrs[key], **gains)
        curves.append(
            {"label": label, "curvature": ds.attrs[key], other: values, "damping": damping}
        )
    return curves


# ---------------------------------------------------------------------- output


def to_json(ds: xr.Dataset) -> dict:
    """The map as plain lists: one row per value of the second axis, one column per first."""
    first, second = ds.final_train_loss.dims

    def rows(name):
        values = ds[name].transpose(second, first).values
        return [[None if not np.isfinite(v) else float(v) for v in row] for row in values]

    return {
        first: [float(v) for v in ds[first].values],
        second: [float(v) for v in ds[second].values],
        "axes": [first, second],
        "final_train_loss": rows("final_train_loss"),
        "time_to_target": rows("time_to_target"),
        "diverged": ds.diverged.transpose(second, first).values.tolist(),
        "target": ds.attrs["target"],
        "horizon": ds.attrs["horizon"],
        "solver": ds.attrs["solver"],
        "step_size": ds.attrs["step_size"],
        "wall_seconds": ds.attrs["wall_seconds"],
        **{k: v for k, v in ds.attrs.items() if k.startswith("curvature_")},
        "config": json.loads(ds.attrs["config"]),
    }


def write_png(ds: xr.Dataset, path) -> None:
    """log10 final training loss over the two gains (log axes), critical curves on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, second = ds.final_train_loss.dims
    x, y = ds[first].values, ds[second].values
    z = np.log10(ds.final_train_loss.transpose(second, first).values)
    fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    mesh = ax.pcolormesh(cell_edges(x), cell_edges(y), np.ma.masked_invalid(z), cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="log10 final training loss")
    diverged = ds.diverged.transpose(second, first).values
    for i, j in zip(*np.nonzero(diverged), strict=True):
        ax.text(x[j], y[i], "×", ha="center", va="center", color="red", fontsize=14)
    curves = [c for c in critical_curves(ds) if (c["damping"] > 0).any()]  # λ ≤ 0: no curve
    for curve, style in zip(curves, ("--", "-", ":", "-."), strict=False):
        other = second if first == "damping" else first
        cx, cy = curve["damping"], curve[other]
        if first != "damping":
            cx, cy = cy, cx
        ax.plot(cx, cy, style, color="white", lw=2, label=f"critical, {curve['label']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(cell_edges(x)[0], cell_edges(x)[-1])
    ax.set_ylim(cell_edges(y)[0], cell_edges(y)[-1])
    ax.set_xlabel(first.replace("_", " "))
    ax.set_ylabel(second.replace("_", " "))
    ax.set_title(f"{json.loads(ds.attrs['config'])['dataset']} · T = {ds.attrs['horizon']:g}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cell_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges on a log scale around each value (geometric midpoints).

    A value of 0 (no damping, no weight decay) sits a decade below the smallest
    positive one, so that it has a cell on log axes.
    """
    v = np.asarray(values, dtype=float)
    v = np.where(v > 0, v, v[v > 0].min() / 10 if (v > 0).any() else 1e-3)
    if len(v) == 1:
        return np.array([v[0] / 2, v[0] * 2])
    mid = np.sqrt(v[:-1] * v[1:])
    return np.concatenate([[v[0] ** 2 / mid[0]], mid, [v[-1] ** 2 / mid[-1]]])


# ---------------------------------------------------------------------- CLI


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train over a grid of two gains as one batched ensemble (a gain map)",
        description=__doc__.splitlines()[0],
    )
    from .config import PRESETS
    from .flags import add_setting_flags

    p.add_argument("--preset", choices=list(PRESETS), default="default")
    for gain in GAINS:
        p.add_argument(f"--{gain.replace('_', '-')}", help=f"{gain} values, e.g. 0.1,0.4,1.6")
    p.add_argument("--horizon", type=float, help="end time T (default: the preset's)")
    p.add_argument("--target", type=float, help="loss for time_to_target (default 1%% of L(0))")
    add_setting_flags(
        p,
        ("step_size", "switching_interval", "device"),
        aliases={"switching_interval": ("--dt",)},
        defaults={"device": "cpu"},
    )
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--no-curvature", action="store_true", help="skip the Lanczos curvatures")
    p.add_argument("--out", help="write the map as JSON here")
    p.add_argument("--netcdf", help="write the whole Dataset as netCDF here")
    p.add_argument("--png", help="draw the map here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=sweep_command)


def _parse_values(flag: str, text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(
            f"Invalid --{flag}: {text!r} (expected numbers separated by commas)"
        ) from None


def sweep_command(args) -> int:
    from tqdm import tqdm

    axes = {
        gain: _parse_values(gain.replace("_", "-"), getattr(args, gain))
        for gain in GAINS
        if getattr(args, gain) is not None
    }
    config = make_config(
        args.preset,
        step_size=args.step_size,
        switching_interval=args.switching_interval,
        device=args.device,
    )
    bar = tqdm(total=1, unit=" member-intervals", disable=args.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        ds = sweep(
            config,
            horizon=args.horizon,
            target=args.target,
            scheduler=args.scheduler,
            curvature=not args.no_curvature,
            progress=progress,
            **axes,
        )
    finally:
        bar.close()
    summary = to_json(ds)
    print(
        f"{ds.final_train_loss.size} runs to T = {ds.attrs['horizon']:g} in "
        f"{ds.attrs['wall_seconds']:.2f} s · best final loss {float(ds.final_train_loss.min()):.4g}"
        f" · {int(ds.diverged.sum())} diverged"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.netcdf:
        ds.to_netcdf(args.netcdf)
        print(f"wrote {args.netcdf}", file=sys.stderr)
    if args.png:
        write_png(ds, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
