"""A run as files for slides and notes: its records as CSV, its settings as JSON, and
its path over the landscape with its energy as an animated GIF or MP4 (no GUI code).

The JSON holds every setting of ``TrainingConfig`` and nothing else, so
``python -m phviz train --config run.json`` runs the same set-up again.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .config import TrainingConfig, make_config

# The scalar fields of a record, in the order of the CSV's columns.
RECORD_COLUMNS = (
    "t",
    "interval",
    "epoch",
    "batch",
    "switched",
    "train_loss",
    "test_loss",
    "accuracy",
    "train_accuracy",
    "hamiltonian",
    "kinetic",
    "potential",
    "dissipated",
    "supplied",
    "switch_jumps",
    "gain_jumps",
    "ledger_residual",
    "momentum_norm",
    "nfe",
    "wall",
)
ANIMATION_FORMATS = (".gif", ".mp4")


# ------------------------------------------------------------------ records
def write_records_csv(records: Sequence, file, tracked: Sequence[int] | None = None) -> None:
    """One row per record into the open text ``file``: the scalar fields, then θ and p
    at the tracked coordinates as ``theta_<i>`` and ``p_<i>`` (``i`` the coordinate's
    index in θ when ``tracked`` gives them, else its position among the samples)."""
    n = len(records[0].theta_sample) if records else 0
    names = list(tracked) if tracked is not None else list(range(n))
    if len(names) != n:
        raise ValueError(f"Invalid tracked: {len(names)} indices for {n} tracked coordinates")
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow([*RECORD_COLUMNS, *(f"theta_{i}" for i in names), *(f"p_{i}" for i in names)])
    for record in records:
        row = [_cell(getattr(record, name)) for name in RECORD_COLUMNS]
        row += [_cell(v) for v in np.asarray(record.theta_sample, dtype=float)]
        row += [_cell(v) for v in np.asarray(record.p_sample, dtype=float)]
        writer.writerow(row)


def records_csv(records: Sequence, tracked: Sequence[int] | None = None) -> str:
    """``write_records_csv`` as a string."""
    import io

    buffer = io.StringIO()
    write_records_csv(records, buffer, tracked)
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    return "" if math.isnan(value) else repr(value)


# ------------------------------------------------------------------ settings
def settings_json(config: TrainingConfig) -> str:
    """Every setting of ``config`` as JSON (keys are the config's parameter names)."""
    return json.dumps(config.values(), indent=2, sort_keys=True) + "\n"


def load_settings(path) -> TrainingConfig:
    """A config from a file written by ``settings_json`` (or a ``train --out`` summary,
    whose ``config`` it takes); a file that is not such JSON, an
    unknown setting or a value out of bounds is a ``ValueError`` naming the file."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"Cannot read settings from {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"Invalid settings file {path}: not JSON ({err})") from None
    if isinstance(values, dict) and isinstance(values.get("config"), dict):
        values = values["config"]  # the summary ``python -m phviz train --out`` writes
    if not isinstance(values, dict):
        raise ValueError(f"Invalid settings file {path}: expected an object of settings")
    try:
        return make_config(None, **{k: v for k, v in values.items() if k != "name"})
    except (ValueError, TypeError) as err:
        raise ValueError(f"Invalid settings file {path}: {err}") from None


# ------------------------------------------------------------------ animation
GAIN_LABELS = {
    "damping": "damping B",
    "inertia": "inertia M",
    "potential_gain": "potential gain a",
    "weight_decay": "weight decay c",
}


def animate(
    model,
    dataset,
    records: Sequence,
    path,
    *,
    gains: Mapping | None = None,
    frames: int = 60,
    fps: float = 12.0,
    resolution: int = 41,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The path of θ over the loss landscape beside the energy, drawn up to each of
    ``frames`` moments of the run, written to ``path`` (.gif, or .mp4 with
    imageio-ffmpeg installed); ``progress(done, total)`` is called after each frame.

    The landscape is the potential a·L(θ) + (c/2)‖θ‖² of ``model`` on ``dataset``'s
    training set over the plane of the path's two leading principal directions
    (``Plane.from_trajectory``); ``records`` are the run's records (each holds θ).
    ``gains`` (damping, inertia, potential_gain, weight_decay: numbers, or tensors of
    one value a parameter) are named in the title; a and c shape the landscape
    (default 1 and 0).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise ValueError(f"Invalid animation file {path.name!r}: use one of {ANIMATION_FORMATS}")
    if suffix == ".mp4":
        try:
            import imageio.v3 as iio
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError(
                "An MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); a .gif needs nothing"
            ) from None
    if len(records) < 2:
        raise ValueError("An animation needs a run of at least two records: press Run first")
    if not (isinstance(frames, int) and frames >= 2) or not fps > 0:
        raise ValueError(f"Invalid frames/fps: {frames!r}, {fps!r} (need >= 2 and > 0)")
    pictures = _frames(model, dataset, records, dict(gains or {}), frames, resolution, progress)
    if suffix == ".gif":
        _write_gif(path, pictures, fps)
    else:
        iio.imwrite(path, pictures, extension=".mp4", fps=fps)
    return path


def _write_gif(path: Path, pictures: np.ndarray, fps: float) -> None:
    """Frames on one palette made from the last frame (it holds every colour the others
    do): quantizing each frame on its own costs many times more."""
    from PIL import Image

    palette = Image.fromarray(pictures[-1]).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    images = [
        Image.fromarray(p).quantize(palette=palette, dither=Image.Dither.NONE) for p in pictures
    ]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0, optimize=False
    )


def _title(dataset, gains: dict) -> str:
    def value(v) -> str:
        return f"{float(v):g}" if np.size(v) == 1 else "by layer"

    named = [f"{label} = {value(gains[k])}" for k, label in GAIN_LABELS.items() if k in gains]
    return " · ".join([dataset.name, *named])


def _frames(model, dataset, records, gains: dict, frames, resolution, progress):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import colours
    from .landscape import Plane, Potential, extent_around

    thetas = np.stack([np.asarray(r.theta, dtype=np.float64) for r in records])
    plane = Plane.from_trajectory(thetas)
    xy = plane.project(thetas).xy
    extent = extent_around(xy, margin=0.3)
    potential = Potential(
        model,
        dataset.loss_fn,
        dataset.x_train,
        dataset.y_train,
        potential_gain=gains.get("potential_gain", 1.0),
        weight_decay=gains.get("weight_decay", 0.0),
    )
    xs, ys, z = potential.surface(plane, extent, resolution)
    logz = np.log10(np.maximum(np.where(np.isfinite(z), z, np.nan), 1e-12))
    t = np.array([r.t for r in records])
    palette = {
        "H": colours.HAMILTONIAN,
        "potential": colours.POTENTIAL,
        "kinetic": colours.KINETIC,
    }
    energy = {
        "H": np.array([r.hamiltonian for r in records]),
        "potential": np.array([r.potential for r in records]),
        "kinetic": np.array([r.kinetic for r in records]),
    }

    plt.rcParams.update({"font.size": 14, "axes.titlesize": 16, "axes.titleweight": "bold"})
    fig, (land, ener) = plt.subplots(1, 2, figsize=(12.8, 5.6), dpi=100)
    land.contourf(xs, ys, logz, levels=14, cmap="Blues_r")
    land.contour(xs, ys, logz, levels=14, colors="white", linewidths=0.6, alpha=0.7)
    land.set(xlabel=plane.labels[0], ylabel=plane.labels[1], title="Loss landscape (PCA plane)")
    (trail,) = land.plot([], [], color="black", lw=2.5, alpha=0.7, animated=True)
    (head,) = land.plot([], [], "o", color="#e6550d", ms=13, mec="white", mew=2, animated=True)
    positive = np.concatenate([v[v > 0] for v in energy.values()])
    ener.set(
        xlim=(t[0], t[-1]),
        ylim=(positive.min() / 2, positive.max() * 2) if len(positive) else (1e-6, 1),
        yscale="log",
        xlabel="time t",
        ylabel="energy",
        title="Energy",
    )
    lines = {
        name: ener.plot([], [], color=palette[name], lw=3, label=name, animated=True)[0]
        for name in energy
    }
    ener.legend(handles=list(lines.values()), loc="upper right")
    fig.suptitle(_title(dataset, gains), fontsize=14)
    fig.tight_layout()
    # The landscape, axes and legend are drawn once; each frame redraws only the moving
    # artists over a copy of them (a full draw per frame costs about ten times more).
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)

    ends = np.unique(np.linspace(1, len(records), frames).round().astype(int))
    out = []
    for done, end in enumerate(ends, 1):
        trail.set_data(xy[:end, 0], xy[:end, 1])
        head.set_data(xy[end - 1 : end, 0], xy[end - 1 : end, 1])
        for name, line in lines.items():
            line.set_data(t[:end], energy[name][:end])
        fig.canvas.restore_region(background)
        for artist in (trail, head, *lines.values()):
            artist.axes.draw_artist(artist)
        out.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        if progress is not None:
            progress(done, len(ends))
    plt.close(fig)
    plt.rcdefaults()
    return np.stack(out)


__all__ = [
    "RECORD_COLUMNS",
    "animate",
    "load_settings",
    "records_csv",
    "settings_json",
    "write_records_csv",
]
