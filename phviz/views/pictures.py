"""The pictures that cost model evaluations, each made as one immutable object.

The task picture (decision regions, learned field, confusion matrix), the phase
portrait's energy contours and the landscape's gap along the path each evaluate the
model many times; the functions here make one of them from a trainer and a θ, and
say what the damping note says of the extreme modes (``modesjob`` estimates them).
``picturejob.Pictures`` decides which is due and makes it in a session's slice.
No GUI code here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (torch.func imports it on first use: seconds, at start)

from ..data import duffing_field
from ..landscape import (
    Potential,
    extent_around,
    grid_points,
    parameter_label,
    phase_portrait,
)

REGION_RESOLUTION = 90
ARROW_RESOLUTION = 15
ERROR_RESOLUTION = 60


@dataclass(frozen=True)
class TaskPicture:
    """What the task panel shows at one θ.

    kind 'regions': ``xs``, ``ys``, ``values`` (predicted class on the grid);
    kind 'field': ``grid`` (N, 2) arrow tails, ``learned`` and ``true`` fields there,
    and on the finer ``xs``, ``ys`` the error map ``values`` = ‖Ψ(x) − f(x, θ)‖;
    kind 'confusion': ``values`` (n_classes × n_classes counts, rows = true class).
    """

    kind: str
    version: int
    t: float
    xs: np.ndarray | None = None
    ys: np.ndarray | None = None
    values: np.ndarray | None = None
    grid: np.ndarray | None = None
    learned: np.ndarray | None = None
    true: np.ndarray | None = None


@dataclass(frozen=True)
class Stiffness:
    """The extreme modes at time ``t``: ``curvature`` λ_max, the largest Hessian
    eigenvalue of L (the stiffest mode), ``flattest`` λ_min, the smallest (negative:
    a saddle direction), and the damping that would make each critical with the gains
    then in use (0 where a·λ + c ≤ 0: that mode cannot oscillate)."""

    t: float
    curvature: float
    critical: float
    version: int
    flattest: float = math.nan
    flattest_critical: float = math.nan


def damping_regime(damping: float, critical: float, band: float = 0.1) -> str:
    """'under-damped', 'critically damped' or 'over-damped' for ``damping`` against
    ``critical`` (within ``band`` of it, relatively, counts as critical)."""
    if not damping > 0:
        return "undamped"
    if not critical > 0:
        return "over-damped"
    ratio = damping / critical
    if ratio < 1 - band:
        return "under-damped"
    if ratio > 1 + band:
        return "over-damped"
    return "critically damped"


def damping_note(estimate: Stiffness | None, damping: float) -> str:
    """The damping note in words (HTML): for the stiffest (λ_max) and the flattest
    (λ_min) mode, its critical damping and the regime ``damping`` puts it in."""
    if estimate is None:
        return "critical damping: estimating…"
    modes = [("stiffest", estimate.curvature, estimate.critical, "λ_max")]
    if not math.isnan(estimate.flattest):
        modes.append(("flattest", estimate.flattest, estimate.flattest_critical, "λ_min"))
    lines = []
    for name, curvature, critical, symbol in modes:
        if curvature < 0:
            lines.append(
                f"{name} mode: {symbol} ≈ {curvature:.3g} &lt; 0, a saddle direction: the "
                "loss falls away along it, nothing to oscillate, no critical damping"
            )
        elif not critical > 0:
            lines.append(
                f"{name} mode: {symbol} ≈ {curvature:.3g}, flat: no critical damping "
                f"(B = {damping:.3g}: <b>over-damped</b>)"
            )
        else:
            regime = damping_regime(damping, critical)
            lines.append(
                f"{name} mode ({symbol} ≈ {curvature:.3g}): critical damping ≈ "
                f"<b>{critical:.3g}</b> · B = {damping:.3g}: <b>{regime}</b>"
            )
    return "<br>".join(lines)


@dataclass(frozen=True)
class ProfilePicture:
    """The landscape's gap along the path: at each stored time ``t``, the potential
    ``actual`` at θ(t) on the training set and ``surface``, the drawn surface's value
    at θ(t)'s projection on its plane (the same V, so they differ only where the
    path leaves the plane); ``off_plane`` is that distance ‖θ − projection‖."""

    t: np.ndarray
    actual: np.ndarray
    surface: np.ndarray
    off_plane: np.ndarray
    version: int


PROFILE_POINTS = 200  # points of the path the gap curve evaluates (two V's each)


def profile_picture(window, version: int, most: int = PROFILE_POINTS) -> ProfilePicture | None:
    """The gap curve of a ``LandscapeWindow``'s path on its current plane, thinned to
    ``most`` points (None before the window has a surface)."""
    profile = window.profile(max_points=most)
    if profile is None:
        return None
    return ProfilePicture(
        t=np.asarray(profile.t, dtype=float),
        actual=np.asarray(profile.actual, dtype=float),
        surface=np.asarray(profile.on_plane, dtype=float),
        off_plane=np.asarray(profile.off_plane, dtype=float),
        version=version,
    )


@dataclass(frozen=True)
class PhasePicture:
    """Energy contours of coordinate ``index``'s (θ_i, p_i) slice."""

    index: int
    label: str
    qs: np.ndarray
    ps: np.ndarray
    energy: np.ndarray
    version: int


def contour_lines(xs, ys, z, levels) -> dict[str, np.ndarray]:
    """Level lines of z (z.shape == (len(ys), len(xs))) as one line's source data, the
    lines separated by NaN: two arrays on the wire, where a multi-line sends two per
    line (a landscape has dozens)."""
    import contourpy

    generator = contourpy.contour_generator(
        xs, ys, np.ma.masked_invalid(z), line_type=contourpy.LineType.ChunkCombinedNan
    )
    chunks = [generator.lines(level)[0][0] for level in levels]
    chunks = [c for c in chunks if c is not None]
    if not chunks:
        return {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
    points = np.concatenate([np.vstack([c, [[np.nan, np.nan]]]) for c in chunks])
    return {"x": points[:, 0].astype(np.float32), "y": points[:, 1].astype(np.float32)}


def task_kind(trainer) -> str:
    ds = trainer.dataset
    if ds.task == "classification":
        return "regions" if ds.input_dim == 2 else "confusion"
    plane_to_plane = ds.input_dim == 2 and ds.output_dim == 2
    return "field" if ds.name == "duffing" or plane_to_plane else "none"


@torch.no_grad()
def task_picture(trainer, theta: np.ndarray, t: float, version: int) -> TaskPicture | None:
    """The task panel's picture for parameters ``theta`` of ``trainer``'s model."""
    kind = task_kind(trainer)
    ds, system = trainer.dataset, trainer.system
    theta_t = torch.as_tensor(theta).to(device=trainer.device, dtype=trainer.dtype)

    def predict(x: np.ndarray) -> np.ndarray:
        inputs = torch.as_tensor(x).to(device=trainer.device, dtype=trainer.dtype)
        return system.forward(theta_t, inputs).double().cpu().numpy()

    if kind == "regions":
        extent = extent_around(ds.x_train.cpu().numpy(), margin=0.15, per_axis=True)
        xs, ys, grid = grid_points(extent, REGION_RESOLUTION)
        classes = predict(grid).argmax(-1).reshape(len(ys), len(xs))
        return TaskPicture("regions", version, t, xs=xs, ys=ys, values=classes)
    if kind == "confusion":
        x, y = (ds.x_test, ds.y_test) if len(ds.x_test) else (ds.x_train, ds.y_train)
        predicted = predict(x.cpu().numpy()).argmax(-1)
        counts = np.zeros((ds.n_classes, ds.n_classes))
        np.add.at(counts, (y.cpu().numpy(), predicted), 1)
        return TaskPicture("confusion", version, t, values=counts)
    if kind == "field":
        extent = extent_around(ds.x_train.cpu().numpy(), margin=0.15, per_axis=True)
        xs, ys, fine = grid_points(extent, ERROR_RESOLUTION)
        if ds.name == "duffing":
            _, _, arrows = grid_points(extent, ARROW_RESOLUTION)
            true, fine_true = duffing_field(arrows), duffing_field(fine)
        else:  # a field known at its points only: arrows there, the nearest one's target
            arrows, true, fine_true = _field_samples(ds, fine)
        error = np.linalg.norm(predict(fine) - fine_true, axis=-1)
        return TaskPicture(
            "field",
            version,
            t,
            xs=xs,
            ys=ys,
            values=error.reshape(len(ys), len(xs)),
            grid=arrows,
            learned=predict(arrows),
            true=true,
        )
    return None


def _field_samples(ds, fine: np.ndarray, most: int = ARROW_RESOLUTION**2):
    """Up to ``most`` of a field's training points and their targets (the arrows), and
    on the ``fine`` grid the target of the nearest of them (the error map's truth)."""
    x = ds.x_train.double().cpu().numpy()
    y = ds.y_train.double().cpu().numpy()
    if len(x) > most:
        keep = np.linspace(0, len(x) - 1, most).astype(int)
        x, y = x[keep], y[keep]
    nearest = ((fine[:, None, :] - x[None, :, :]) ** 2).sum(-1).argmin(1)
    return x, y, y[nearest]


def entry(gain, index: int) -> float:
    if isinstance(gain, torch.Tensor) and gain.dim():
        return float(gain[index])
    return float(gain)


def closed_orbits(ps, energy, inertia: float):
    """Widen the momentum axis to ±√(2·m·ΔV), ΔV the potential's range along θ_i.

    A path's own momenta can be far smaller than the potential's drop along θ_i; the
    contours of V + p²/2m then show only the kinetic term, as flat lines. With this
    extent the level sets close into the orbits the coordinate would follow.
    """
    row = int(np.argmin(np.abs(ps)))
    potential_q = energy[row] - ps[row] ** 2 / (2 * inertia)
    finite = potential_q[np.isfinite(potential_q)]
    if not len(finite):
        return ps, energy
    half = max(float(np.abs(ps).max()), math.sqrt(2 * inertia * float(np.ptp(finite))))
    ps = np.linspace(-half, half, len(ps))
    return ps, ps[:, None] ** 2 / (2 * inertia) + potential_q[None, :]


def phase_picture(trainer, theta, index: int, q_extent, p_extent, version: int) -> PhasePicture:
    """Energy contours of coordinate ``index``'s (θ_i, p_i) slice at ``theta``."""
    potential = Potential.from_trainer(trainer)
    inertia = trainer.system.inertia
    qs, ps, energy = phase_portrait(
        potential,
        theta,
        index,
        q_extent=q_extent,
        p_extent=p_extent,
        resolution=41,
        inertia=inertia,
    )
    ps, energy = closed_orbits(ps, energy, entry(inertia, index))
    label = parameter_label(trainer.system.layout, index)
    return PhasePicture(index, label, qs, ps, energy, version)
