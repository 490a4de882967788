"""Gain maps: the batched ensemble equals runs one at a time, and says what it promises."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import make_small_config as small_config

import phviz
from phviz.curvature import curvature_extremes
from phviz.dynamics import critical_damping
from phviz.gainmaps import critical_curves
from phviz.solvers import conformal_symplectic_step
from phviz.sweep import time_to_target


def single_run_reference(config, horizon, **gains):
    """One member alone: the engine's step in a plain loop over the same full batch."""
    trainer = phviz.Trainer(config)
    system = trainer.system
    system.set_gains(**gains)
    theta, p = trainer.initial_theta.clone(), torch.zeros_like(trainer.initial_theta)
    steps = round(config.switching_interval / config.step_size)
    h = config.switching_interval / steps

    def force(x):
        return -system.potential_gradient(x)

    losses, energies = [], []
    for k in range(round(horizon / config.switching_interval) + 1):
        if k:
            for _ in range(steps):
                theta, p, _ = conformal_symplectic_step(
                    theta, p, force, h, system.damping, system.inertia
                )
        with torch.no_grad():
            losses.append(float(system.loss(theta)))
            energies.append(float(system.hamiltonian(torch.cat([theta, p]))))
    return np.array(losses), np.array(energies)


def test_each_cell_equals_the_single_run_reference():
    config = small_config(weight_decay=0.01, potential_gain=4.0)  # moves far by t = 0.6
    ds = phviz.sweep(
        config, damping=[0.1, 2.0, 50.0], inertia=[0.5, 2.0], horizon=0.6, curvature=False
    )
    assert ds.train_loss.dims == ("damping", "inertia", "t")
    assert ds.t.values[-1] == pytest.approx(0.6) and len(ds.t) == 7
    for b in ds.damping.values:
        for m in ds.inertia.values:
            loss, energy = single_run_reference(config, 0.6, damping=b, inertia=m)
            cell = ds.sel(damping=b, inertia=m)
            np.testing.assert_allclose(cell.train_loss.values, loss, rtol=1e-3)
            np.testing.assert_allclose(cell.hamiltonian.values, energy, rtol=1e-3)
            drop = cell.train_loss.values[0] - cell.train_loss.values
            np.testing.assert_allclose(drop, loss[0] - loss, rtol=1e-2, atol=1e-6)
    # the gains matter: the runs differ from each other by far more than the tolerance
    finals = ds.final_train_loss.values
    assert finals.max() / finals.min() > 1.05
    assert ds.attrs["solver"] == "conformal_leapfrog" and ds.attrs["step_size"] == 0.01
    assert json.loads(ds.attrs["config"])["weight_decay"] == 0.01


def test_each_cell_equals_the_trainers_own_run_with_its_gains():
    config = small_config(weight_decay=0.01, potential_gain=4.0)
    ds = phviz.sweep(config, damping=[0.1, 50.0], inertia=[0.5, 2.0], horizon=0.5, curvature=False)
    for b in ds.damping.values:
        for m in ds.inertia.values:
            single = phviz.make_config(
                **{**config.values(), "solver": "conformal_leapfrog", "damping": b, "inertia": m}
            )
            trainer = phviz.Trainer(single)
            records = [trainer.last, *trainer.run(0.5)]
            cell = ds.sel(damping=b, inertia=m)
            np.testing.assert_allclose(
                cell.train_loss.values, [r.train_loss for r in records], rtol=1e-3
            )
            np.testing.assert_allclose(
                cell.hamiltonian.values, [r.hamiltonian for r in records], rtol=1e-3
            )


def test_other_axes_and_gains_from_the_config():
    config = small_config(damping=1.0, inertia=2.0)
    ds = phviz.sweep(
        config, potential_gain=[0.5, 3.0], weight_decay=[0.0, 0.1], horizon=0.5, curvature=False
    )
    loss, _ = single_run_reference(config, 0.5, potential_gain=3.0, weight_decay=0.1)
    np.testing.assert_allclose(
        ds.train_loss.sel(potential_gain=3.0, weight_decay=0.1).values, loss, rtol=1e-3
    )


def test_time_to_target_is_the_first_record_at_or_below_it():
    t = np.array([0.0, 0.5, 1.0, 1.5])
    loss = np.array([[1.0, 0.6, 0.4, 0.3], [1.0, 0.9, 0.8, 0.7], [1.0, 0.5, np.nan, np.nan]])
    np.testing.assert_array_equal(time_to_target(loss, t, 0.5), [1.0, np.nan, 0.5])
    assert time_to_target(loss, t, 1.0)[0] == 0.0  # reached at the start already

    config = small_config()
    ds = phviz.sweep(config, damping=[0.2, 1.0], inertia=[0.5, 1.0], horizon=1.0, curvature=False)
    initial = float(ds.train_loss.isel(t=0)[0, 0])
    assert ds.attrs["target"] == pytest.approx(0.01 * initial)  # the default: 1 % of L(0)
    target = float(ds.final_train_loss.max()) * 1.01  # every run gets there
    timed = phviz.sweep(
        config, damping=[0.2, 1.0], inertia=[0.5, 1.0], horizon=1.0, target=target, curvature=False
    )
    for loss, reached in zip(
        timed.train_loss.values.reshape(4, -1), timed.time_to_target.values.ravel(), strict=True
    ):
        k = int(np.searchsorted(timed.t.values, reached))
        assert timed.t.values[k] == reached and loss[k] <= target
        assert (loss[:k] > target).all()
    never = phviz.sweep(
        config, damping=[0.2], inertia=[1.0], horizon=0.5, target=1e-9, curvature=False
    )
    assert np.isnan(never.time_to_target.values).all()


def test_a_diverging_member_is_flagged_and_frozen_without_touching_the_others():
    # leapfrog is unstable once h²c/m > 4: c = 1e4, m = 0.01, h = 0.01 gives 100
    config = small_config()
    axes = dict(weight_decay=[0.0, 1e4], inertia=[1.0, 0.01])
    ds = phviz.sweep(config, horizon=0.5, curvature=False, **axes)
    np.testing.assert_array_equal(ds.diverged.values, [[False, False], [False, True]])
    bad = ds.sel(weight_decay=1e4, inertia=0.01)
    assert np.isnan(bad.final_train_loss) and np.isnan(bad.train_loss.values[-1])
    assert np.isfinite(bad.train_loss.values[0])
    alone = phviz.sweep(
        config, weight_decay=[0.0], inertia=[1.0, 0.01], horizon=0.5, curvature=False
    )
    np.testing.assert_array_equal(
        ds.train_loss.sel(weight_decay=0.0).values, alone.train_loss.sel(weight_decay=0.0).values
    )
    stiff = ds.sel(weight_decay=1e4, inertia=1.0)  # stable, and much worse: c pulls θ to 0
    assert np.isfinite(stiff.final_train_loss)


@pytest.mark.parametrize(
    ("axes", "error", "pattern"),
    [
        (dict(damping=[1.0]), ValueError, "exactly two gain axes, got 1"),
        (dict(damping=[1.0], inertia=[1.0], weight_decay=[0.0]), ValueError, "got 3"),
        (dict(damping=[1.0], mass=[1.0]), TypeError, "Unknown gain: 'mass'"),
        (dict(damping=[-1.0], inertia=[1.0]), ValueError, r"Invalid damping: -1\.0"),
        (dict(damping=[1.0], inertia=[1.0, 0.0]), ValueError, r"Invalid inertia: 0\.0"),
        (dict(damping=[], inertia=[1.0]), ValueError, "Invalid damping axis: \\[\\]"),
        (dict(damping=0.5, inertia=[1.0]), ValueError, "Invalid damping axis: 0.5"),
        (dict(damping=["a"], inertia=[1.0]), TypeError, "Invalid damping: 'a'"),
    ],
)
def test_axes_are_checked_before_anything_runs(axes, error, pattern):
    with pytest.raises(error, match=pattern):
        phviz.sweep(small_config(), horizon=0.1, **axes)


def cell_against_trainer(config, horizon, rtol, **gains):
    """A one-cell map of ``config`` with ``gains``, and the Trainer's own run of it by the
    same solver: their training-loss and energy curves."""
    ds = phviz.sweep(config, horizon=horizon, curvature=False, **{k: [v] for k, v in gains.items()})
    solver = ds.attrs["solver"]
    trainer = phviz.Trainer(phviz.make_config(**{**config.values(), **gains, "solver": solver}))
    records = [trainer.last, *trainer.run(horizon)]
    cell = ds.isel({name: 0 for name in gains})
    np.testing.assert_allclose(cell.train_loss.values, [r.train_loss for r in records], rtol=rtol)
    np.testing.assert_allclose(cell.hamiltonian.values, [r.hamiltonian for r in records], rtol=rtol)
    return cell


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_mini_batch_cell_is_the_trainers_run_shuffled_or_not(shuffle):
    """The map and the Trainer share one batch schedule: with and without shuffling."""
    config = small_config(batch_size=32, shuffle=shuffle, solver="conformal_leapfrog")
    cell = cell_against_trainer(config, 1.2, 1e-5, damping=0.7, inertia=0.5)
    assert cell.train_loss.values[-1] < cell.train_loss.values[0]


def test_the_papers_online_run_cell_is_the_trainers_run():
    """paper-blobs-online: one sample an interval in the data's order, the notebook's
    weights and momenta (a map once started every member at rest, and shuffled)."""
    config = phviz.make_config("paper-blobs-online")
    cell_against_trainer(config, 2.0, 1e-8, damping=100.0, inertia=0.5)


def test_the_papers_duffing_cell_starts_from_the_configured_momenta():
    """paper-duffing draws p(0) uniform in [0, 1): every member starts there too."""
    config = phviz.make_config("paper-duffing", step_size=0.05)
    cell = cell_against_trainer(config, 2.0, 1e-4, damping=0.5, inertia=0.5)
    trainer = phviz.Trainer(config)
    kinetic = float(trainer.system.energy(trainer.xi).kinetic)
    assert kinetic > 1.0  # the momenta are not zero: a real check of the start
    assert cell.hamiltonian.values[0] == pytest.approx(trainer.last.hamiltonian, rel=1e-6)


def test_mini_batch_members_switch_batches_and_record_the_training_loss():
    config = small_config(batch_size=30)
    ds = phviz.sweep(config, damping=[0.5, 2.0], inertia=[1.0], horizon=0.5, curvature=False)
    trainer = phviz.Trainer(config)
    full = phviz.sweep(
        small_config(), damping=[0.5, 2.0], inertia=[1.0], horizon=0.5, curvature=False
    )
    np.testing.assert_allclose(ds.train_loss.isel(t=0), full.train_loss.isel(t=0))
    assert not np.allclose(ds.train_loss.values[..., -1], full.train_loss.values[..., -1])
    assert trainer.batches_per_epoch == 3


def test_dask_local_cluster_gives_the_same_numbers():
    distributed = pytest.importorskip("distributed")
    config = small_config()
    axes = dict(damping=[0.3, 3.0], inertia=[0.5, 2.0])
    local = phviz.sweep(config, horizon=0.5, curvature=False, **axes)
    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        calls = []
        remote = phviz.sweep(
            config,
            horizon=0.5,
            curvature=False,
            scheduler=cluster.scheduler_address,
            chunk_size=3,
            progress=lambda done, total: calls.append((done, total)),
            **axes,
        )
    np.testing.assert_allclose(remote.train_loss, local.train_loss, rtol=1e-5)
    np.testing.assert_array_equal(remote.diverged, local.diverged)
    assert calls[-1] == (20, 20)  # 4 members × 5 intervals, in two chunks


def test_lanczos_finds_the_extreme_eigenvalues_of_a_quadratic():
    generator = torch.Generator().manual_seed(0)
    n = 40
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    eigenvalues = torch.linspace(-0.5, 10.0, n, dtype=torch.float64)
    a_matrix = q @ torch.diag(eigenvalues) @ q.T

    def loss(theta):
        return 0.5 * theta @ a_matrix @ theta

    theta = torch.randn(n, generator=generator, dtype=torch.float64)
    lo, hi = curvature_extremes(loss, theta)
    assert lo == pytest.approx(-0.5, abs=1e-6) and hi == pytest.approx(10.0, rel=1e-6)
    lo, hi = curvature_extremes(loss, theta, potential_gain=2.0, weight_decay=0.3)
    assert lo == pytest.approx(2 * -0.5 + 0.3, abs=1e-6) and hi == pytest.approx(20.3, rel=1e-6)
    small = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # eigenvalues 1, 3
    lo, hi = curvature_extremes(lambda x: 0.5 * x @ small @ x, torch.zeros(2, dtype=torch.float64))
    assert (lo, hi) == (pytest.approx(1.0), pytest.approx(3.0))


def test_critical_damping_and_its_curves_over_the_map():
    assert critical_damping(4.0, inertia=0.25, potential_gain=2.0, weight_decay=1.0) == (
        pytest.approx(2 * np.sqrt(9.0 * 0.25))
    )
    assert critical_damping(-1.0) == 0.0  # a saddle direction never oscillates
    ds = phviz.sweep(small_config(), damping=[0.1, 1.0], inertia=[0.5, 2.0], horizon=0.3)
    for key in ("curvature_min_initial", "curvature_max_initial", "curvature_max_final"):
        assert np.isfinite(ds.attrs[key])
    assert ds.attrs["curvature_min_initial"] <= ds.attrs["curvature_max_initial"]
    curves = critical_curves(ds)
    assert len(curves) == 4
    top = curves[1]
    m = top["inertia"]
    np.testing.assert_allclose(top["damping"], 2 * np.sqrt(ds.attrs["curvature_max_initial"] * m))
    assert m.min() == pytest.approx(0.25) and m.max() == pytest.approx(4.0)  # the cell edges


def test_cli_writes_the_promised_json_netcdf_and_png(tmp_path):
    out, nc, png = tmp_path / "sweep.json", tmp_path / "sweep.nc", tmp_path / "map.png"
    args = ["--preset", "paper-blobs", "--damping", "0.5,2", "--inertia", "1,2,4"]
    args += ["--horizon", "0.3", "--out", str(out), "--netcdf", str(nc), "--png", str(png)]
    result = subprocess.run(
        [sys.executable, "-m", "phviz", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["damping"] == [0.5, 2.0] and summary["inertia"] == [1.0, 2.0, 4.0]
    assert np.shape(summary["final_train_loss"]) == (3, 2)  # a row per inertia
    assert np.shape(summary["time_to_target"]) == (3, 2)
    assert summary["target"] > 0 and summary["wall_seconds"] > 0
    with xr.open_dataset(nc) as ds:
        assert ds.final_train_loss.shape == (2, 3)
        assert summary["final_train_loss"][2][1] == pytest.approx(
            float(ds.final_train_loss.sel(damping=2.0, inertia=4.0))
        )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "6 runs" in result.stdout
