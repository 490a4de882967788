"""A gain map read and written: its critical-damping curves, JSON, a picture, and the
``python -m phviz sweep`` command."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import numpy as np

from .config import make_config
from .dynamics import critical_damping
from .gains import GAINS
from .sweep import sweep

if TYPE_CHECKING:
    import xarray as xr


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


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train over a grid of two gains as one batched ensemble (a gain map)",
        description="Train over a grid of two gains as one batched ensemble (a gain map).",
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
