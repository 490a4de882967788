"""The paper's experiments drawn: weights and velocities, J(t) and the decision
boundary, the weight-decay sweep, the Duffing run and its learned field (matplotlib,
imported when a figure is drawn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import colours
from .data import DUFFING
from .experiments import PAPER_DUFFING_REFERENCE, Run, reconstruction_error_map, rollout
from .landscape import grid_points
from .training import Trainer


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 15,
            "axes.titlesize": 17,
            "axes.labelsize": 16,
            "legend.fontsize": 13,
            "xtick.labelsize": 14,
            "ytick.labelsize": 14,
            "lines.linewidth": 2.4,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def linear_boundary_figure(run: Run, path) -> Path:
    """Weights, velocities, J(t) and the decision boundary on the test points."""
    plt = _pyplot()
    trainer, t = run.trainer, run.series("t")
    names = _linear_names(trainer)
    theta = np.stack([r.theta for r in run.records])
    velocity = np.stack([r.p_sample for r in run.records]) / trainer.config.inertia
    fig, axes = plt.subplots(2, 2, figsize=(15, 11), layout="constrained")
    ax = axes[0, 0]
    for i, name in enumerate(names):
        ax.plot(t, theta[:, i], color=f"C{i}", label=name)
    ax.set(title="Weights θ(t)", xlabel="time t", ylabel="θ")
    ax.legend(ncol=3, loc="best")
    ax = axes[0, 1]
    for i in trainer.tracked:
        ax.plot(t, velocity[:, list(trainer.tracked).index(i)], color=f"C{i}", label=names[i])
    ax.set(title="Velocities θ̇ = M⁻¹p", xlabel="time t", ylabel="θ̇ (1/time)")
    ax = axes[1, 0]
    ax.semilogy(t, run.series("train_loss"), color=colours.POTENTIAL, label="train loss L")
    ax.semilogy(
        t, run.series("hamiltonian"), color=colours.HAMILTONIAN, label="H = aL + c/2‖θ‖² + kinetic"
    )
    kinetic = np.maximum(run.series("kinetic"), 1e-12)
    ax.semilogy(t, kinetic, color=colours.KINETIC, label="kinetic ½pᵀM⁻¹p")
    ax.set(title="Objective over time", xlabel="time t", ylabel="value (log scale)")
    ax.set_ylim(bottom=max(1e-6, float(kinetic[kinetic > 1e-12].min(initial=1.0)) / 2))
    ax.legend(loc="upper right")
    _decision_panel(axes[1, 1], trainer, run.summary.get("accuracy", float("nan")))
    cfg = trainer.config
    fig.suptitle(
        f"Linear boundary (paper §4.1): a = {cfg.potential_gain:g}, M = {cfg.inertia:g}, "
        f"B = {cfg.damping:g}, c = {cfg.weight_decay:g}, full batch",
        fontsize=19,
    )
    return _save(fig, path)


def _linear_names(trainer: Trainer) -> list[str]:
    k, d = trainer.dataset.output_dim, trainer.dataset.input_dim
    return [f"w{i + 1}{j + 1}" for i in range(k) for j in range(d)] + [
        f"b{i + 1}" for i in range(k)
    ]


def _decision_panel(ax, trainer: Trainer, accuracy: float) -> None:
    ds = trainer.dataset
    x, y = ds.x_test.cpu().numpy(), ds.y_test.cpu().numpy()
    lo, hi = x.min(0) - 0.1, x.max(0) + 0.1
    us, vs, grid = grid_points((lo[0], hi[0], lo[1], hi[1]), 200)
    with torch.no_grad():
        theta = trainer.xi[: trainer.system.dim]
        out = trainer.system.forward(theta, torch.as_tensor(grid).to(trainer.xi))
    margin = (out[:, 0] - out[:, 1]).cpu().numpy().reshape(len(vs), len(us))
    ax.contourf(us, vs, margin, levels=[-1e9, 0, 1e9], colors=colours.TWO_CLASSES[::-1], alpha=0.15)
    ax.contour(us, vs, margin, levels=[0], colors="black", linewidths=2.5)
    for label in (0, 1):
        pts = x[y == label]
        ax.scatter(
            pts[:, 0], pts[:, 1], s=12, color=colours.TWO_CLASSES[label], label=f"class {label + 1}"
        )
    ax.plot([], [], color="black", label="boundary f₁ = f₂")
    ax.set(
        title=f"Decision boundary, test points (accuracy {100 * accuracy:.1f} %)",
        xlabel="input u₁",
        ylabel="input u₂",
    )
    ax.legend(loc="lower right")


def weight_decay_figure(rows: list[dict], path) -> Path:
    """Test error and weight norm against the weight decay c."""
    plt = _pyplot()
    c = np.array([r["weight_decay"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.8), layout="constrained")
    ax = axes[0]
    ax.plot(c, 100 * np.array([r["test_error"] for r in rows]), "o-", color="C3", label="test")
    ax.plot(c, 100 * np.array([r["train_error"] for r in rows]), "s--", color="C7", label="train")
    ax.set(title="Classification error", xlabel="weight decay c", ylabel="error (%)")
    ax.legend()
    ax = axes[1]
    ax.plot(c, [r["theta_norm"] for r in rows], "o-", color="C0", label="‖θ(T)‖, dynamics")
    ax.plot(
        c,
        [r["exact_theta_norm"] for r in rows],
        "x",
        color="black",
        markersize=12,
        markeredgewidth=2.5,
        label="‖θ*‖, closed form",
    )
    ax.set(title="Weight norm", xlabel="weight decay c", ylabel="‖θ‖")
    ax.legend()
    for ax in axes:
        ax.set_xscale("symlog", linthresh=max(1e-3, float(c[c > 0].min(initial=1e-3))))
    fig.suptitle(
        "Effect of weight decay c on the linear boundary (H = aL + c/2‖θ‖² + ½pᵀM⁻¹p)", fontsize=18
    )
    return _save(fig, path)


def duffing_training_figure(run: Run, path) -> Path:
    """Loss and energy over t, and the tracked parameters' trajectories."""
    plt = _pyplot()
    t = run.series("t")
    fig, axes = plt.subplots(1, 2, figsize=(16, 6), layout="constrained")
    ax = axes[0]
    ax.semilogy(
        t, run.series("train_loss"), color=colours.POTENTIAL, label="MSE (potential, a = 1)"
    )
    ax.semilogy(t, np.maximum(run.series("kinetic"), 1e-12), color=colours.KINETIC, label="kinetic")
    ax.semilogy(t, run.series("hamiltonian"), color=colours.HAMILTONIAN, linestyle="--", label="H")
    ax.semilogy(
        t[1:], run.series("dissipated")[1:], color=colours.DISSIPATED, label="dissipated ∫vᵀBv"
    )
    mse = run.summary["final_train_loss"]
    ax.axhline(
        PAPER_DUFFING_REFERENCE["mse"],
        color="C3",
        linestyle=":",
        label=f"paper's final MSE {PAPER_DUFFING_REFERENCE['mse']}",
    )
    ax.set(
        title=f"Loss and energy (final MSE {mse:.2g})", xlabel="time t", ylabel="value (log scale)"
    )
    ax.set_ylim(bottom=1e-6)
    ax.legend(loc="lower left")
    ax = axes[1]
    theta = np.stack([r.theta_sample for r in run.records])
    for i, index in enumerate(run.trainer.tracked):
        ax.plot(t, theta[:, i], color=f"C{i}", label=f"θ[{index}]")
    ax.set(title="Parameter trajectories (sampled)", xlabel="time t", ylabel="θᵢ")
    ax.legend(ncol=2, fontsize=11)
    s = run.summary
    fig.suptitle(
        f"Duffing field (paper §4.2): MLP 2-16-16-2 softplus, B = {run.trainer.config.damping:g}, "
        f"{s['nfe']} evaluations, {s['wall_seconds']:.1f} s",
        fontsize=18,
    )
    return _save(fig, path)


def duffing_field_figure(run: Run, path) -> Path:
    """Reconstruction-error map with the true trajectory, and a rollout from (1.5, 1)."""
    plt = _pyplot()
    trainer = run.trainer
    us, vs, error = reconstruction_error_map(trainer)
    ts, learned, true = rollout(trainer)
    fig, axes = plt.subplots(1, 2, figsize=(16, 6.5), layout="constrained")
    ax = axes[0]
    from matplotlib.colors import LogNorm

    # A log scale shows the error along the data as well as the far corners' extrapolation.
    norm = LogNorm(vmin=max(float(error.min()), 1e-3), vmax=float(error.max()))
    mesh = ax.pcolormesh(us, vs, error, shading="auto", cmap="magma", norm=norm)
    fig.colorbar(mesh, ax=ax, label="‖Ψ(x) − f(x, θ*)‖")
    ax.plot(true[:, 0], true[:, 1], color="white", label="true trajectory")
    ax.plot(learned[:, 0], learned[:, 1], color="#00c0ff", linestyle="--", label="learned rollout")
    ax.plot(*DUFFING["x0"], "o", color="white", markersize=9)
    ax.set(
        title="Reconstruction error over the state space", xlabel="position u", ylabel="velocity v"
    )
    ax.legend(loc="lower left", facecolor="0.85")
    ax = axes[1]
    for i, (name, colour) in enumerate((("u", "C0"), ("v", "C1"))):
        ax.plot(ts, true[:, i], color=colour, label=f"{name}, true")
        ax.plot(ts, learned[:, i], color=colour, linestyle="--", label=f"{name}, learned")
    ax.set(title="Rollout from (1.5, 1)", xlabel="time t (s)", ylabel="state")
    ax.legend(ncol=2)
    return _save(fig, path)
