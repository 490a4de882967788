"""The paper's experiments: presets build the paper's set-ups exactly, short runs learn, and the
linear model's dynamics settle on the closed-form minimiser."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from phviz import Trainer, make_config
from phviz.data import BLOB_COVARIANCE, BLOB_MEANS, DUFFING, duffing_field, duffing_trajectory
from phviz.dynamics import critical_damping
from phviz.experiments import (
    DEFAULT_DECAYS,
    PAPER_LINEAR_CODE,
    duffing,
    from_paper_gains,
    learned_field,
    linear_boundary,
    reconstruction_error_map,
    reproduce,
    ridge_solution,
    rollout,
    weight_decay_sweep,
)
from phviz.paperfigures import linear_boundary_figure

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def blobs_trainer():
    return Trainer(make_config("paper-blobs"))


@pytest.fixture(scope="module")
def duffing_trainer():
    return Trainer(make_config("paper-duffing"))


# ------------------------------------------------------------------ presets = the paper
def test_paper_blobs_data_is_two_gaussians_of_1000_points(blobs_trainer):
    ds = blobs_trainer.dataset
    assert (len(ds.x_train), len(ds.x_test)) == (1500, 500)  # 25 % held out
    x = torch.cat([ds.x_train, ds.x_test]).double()
    y = torch.cat([ds.y_train, ds.y_test])
    assert ds.n_classes == 2 and ds.loss == "mse_onehot"
    for label, mean in enumerate(BLOB_MEANS):
        pts = x[y == label]
        assert len(pts) == 1000
        # standard error of a mean is √(0.025/1000) = 0.005: 4 of them
        assert torch.allclose(pts.mean(0), torch.tensor(mean, dtype=torch.float64), atol=0.02)
        cov = torch.cov(pts.T)
        assert torch.allclose(cov, torch.tensor(BLOB_COVARIANCE, dtype=torch.float64), atol=0.004)


def test_paper_blobs_model_and_gains(blobs_trainer):
    cfg = blobs_trainer.config
    assert blobs_trainer.model.sizes == (2, 2)  # linear 2 → 2
    assert blobs_trainer.system.dim == 6
    assert blobs_trainer.full_batch
    paper = from_paper_gains(
        PAPER_LINEAR_CODE["a"], PAPER_LINEAR_CODE["b"], PAPER_LINEAR_CODE["c"], 1.0, outputs=2
    )
    assert paper["potential_gain"] == cfg.potential_gain
    assert paper["inertia"] == cfg.inertia
    assert paper["weight_decay"] == pytest.approx(cfg.weight_decay)
    # B = 0.3 is near critical (2√(a·λ·M)) for the flattest direction of the loss
    x = torch.cat([blobs_trainer.dataset.x_train, torch.ones(1500, 1)], 1).double()
    flattest = float(torch.linalg.eigvalsh(x.T @ x / 1500)[0])
    critical = critical_damping(flattest, inertia=cfg.inertia, potential_gain=cfg.potential_gain)
    assert 0.2 < critical < cfg.damping < 2 * critical


def test_paper_duffing_data_model_and_gains(duffing_trainer):
    ds, cfg = duffing_trainer.dataset, duffing_trainer.config
    assert len(ds.x_train) == 399 and len(ds.x_test) == 0
    assert ds.loss == "mse"
    x, y = ds.x_train.double().numpy(), ds.y_train.double().numpy()
    assert np.allclose(x[0], (1.5, 1.0))  # the paper's initial state
    # the paper's oscillator u'' = −u − 0.5·u' − u³
    u, v = x.T
    assert np.allclose(duffing_field(x), np.stack([v, -u - 0.5 * v - u**3], -1))
    # targets are the finite-difference derivatives along the trajectory sampled at 0.02 s
    assert np.allclose(y[:-1], np.diff(x, axis=0) / 0.02, atol=1e-4)
    # a forward difference is Ψ averaged over the step: the trapezoid rule, to O(dt²)
    trapezoid = (duffing_field(x[:-1]) + duffing_field(x[1:])) / 2
    assert np.abs(y[:-1] - trapezoid).max() < 5e-3
    assert duffing_trainer.model.sizes == (2, 16, 16, 2)
    assert (duffing_trainer.model.activation, duffing_trainer.model.softplus_beta) == (
        "softplus",
        10.0,
    )
    assert duffing_trainer.full_batch
    assert (cfg.damping, cfg.horizon, cfg.weight_decay) == (0.5, 100.0, 0.0)


# ------------------------------------------------------------------ the paper's J*
def test_from_paper_gains_reproduces_the_papers_linear_dynamics(blobs_trainer):
    """θ̇ = 2bω, ω̇ = −∂J*/∂θ − β·2bω, with J* = a‖ŷ − f‖² + b‖ω‖² + c‖θ‖² written out."""
    a, b, c, beta = 0.7, 1.3, 0.01, 5.0
    system = Trainer(
        make_config("paper-blobs", **from_paper_gains(a, b, c, beta, outputs=2))
    ).system
    ds = blobs_trainer.dataset
    generator = torch.Generator().manual_seed(3)
    theta = torch.randn(6, generator=generator, dtype=torch.float64)
    omega = torch.randn(6, generator=generator, dtype=torch.float64)
    w, bias = theta[:4].reshape(2, 2), theta[4:]
    x = ds.x_train.double()
    onehot = torch.nn.functional.one_hot(ds.y_train, 2).double()
    residual = x @ w.T + bias - onehot  # (N, 2)
    grad_w = 2 * a * residual.T @ x / len(x)  # mean over samples of ∂(a‖ŷ − f‖²)/∂W
    grad_b = 2 * a * residual.mean(0)
    grad = torch.cat([grad_w.reshape(-1), grad_b]) + 2 * c * theta
    expected = torch.cat([2 * b * omega, -grad - beta * 2 * b * omega])
    xi = torch.cat([theta, omega]).float()
    assert torch.allclose(system(0.0, xi).double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        (dict(a=1.0, b=0.0, c=0.0, beta=1.0), "b"),
        (dict(a=-1.0, b=1.0, c=0.0, beta=1.0), "a"),
        (dict(a=1.0, b=1.0, c=-0.1, beta=1.0), "c"),
        (dict(a=1.0, b=1.0, c=0.0, beta=0.0), "beta"),
    ],
)
def test_from_paper_gains_rejects_bad_gains(kwargs, bad):
    with pytest.raises(ValueError, match=f"paper gain {bad}:"):
        from_paper_gains(**kwargs)


def test_from_paper_gains_rejects_bad_outputs():
    with pytest.raises(ValueError, match="outputs: 0"):
        from_paper_gains(1.0, 1.0, 0.0, 1.0, outputs=0)


# ------------------------------------------------------------------ short runs learn
def test_short_paper_blobs_run_improves_loss_tenfold_with_balanced_ledger():
    run = linear_boundary(horizon=5.0)
    s = run.summary
    assert s["final_train_loss"] < s["initial_train_loss"] / 10  # measured: 17×
    h0 = run.records[0].hamiltonian
    assert abs(s["ledger_residual"]) < 3e-3 * h0  # rtol 1e-4
    assert all(r.hamiltonian <= h0 + 1e-6 for r in run.records)  # passive: H never grows
    assert s["accuracy"] > 0.95


def test_short_paper_duffing_run_improves_loss_tenfold_with_balanced_ledger():
    run = duffing(horizon=20.0)
    s = run.summary
    assert s["final_train_loss"] < s["initial_train_loss"] / 10  # measured: 19×
    h0 = run.records[0].hamiltonian
    assert run.records[0].kinetic > 10  # p(0) uniform in [0, 1), as the paper's code
    assert abs(s["ledger_residual"]) < 1e-3 * h0  # rtol 1e-4
    hs = run.series("hamiltonian")
    assert np.all(np.diff(hs) <= 1e-3 * h0)


def test_linear_boundary_settles_on_the_closed_form_minimiser():
    run = linear_boundary(horizon=30.0, weight_decay=0.1)
    trainer = run.trainer
    exact = ridge_solution(trainer.dataset, trainer.config.potential_gain, 0.1)
    theta = trainer.xi[:6].double()
    assert torch.allclose(theta, exact, atol=2e-3)
    # the minimiser makes the gradient of a·L + c/2‖θ‖² vanish
    grad = trainer.system.potential_gradient(exact.float())
    assert grad.abs().max() < 1e-4


def test_weight_decay_shrinks_the_weights():
    rows = weight_decay_sweep([0.03, 0.3, 3.0], horizon=15.0)
    norms = [r["theta_norm"] for r in rows]
    assert norms[0] > norms[1] > norms[2]
    for r in rows:
        assert r["theta_norm"] == pytest.approx(r["exact_theta_norm"], rel=0.02)
    assert rows[-1]["test_error"] > rows[0]["test_error"]  # c = 3 underfits


def test_weight_decay_sweep_rejects_negative_decay():
    with pytest.raises(ValueError, match="weight decay: -1"):
        weight_decay_sweep([-1.0])


# ------------------------------------------------------------------ Duffing diagnostics
def test_reconstruction_error_map_is_the_pointwise_error(duffing_trainer):
    us, vs, error = reconstruction_error_map(duffing_trainer, resolution=7, extent=(-1, 1, -2, 0))
    assert error.shape == (7, 7)
    assert us[0] == -1 and us[-1] == 1 and vs[0] == -2 and vs[-1] == 0
    point = np.array([us[2], vs[5]])
    expected = np.linalg.norm(duffing_field(point) - learned_field(duffing_trainer, point))
    assert error[5, 2] == pytest.approx(expected, rel=1e-5)


def test_reconstruction_error_map_rejects_bad_resolution(duffing_trainer):
    with pytest.raises(ValueError, match="resolution: 1"):
        reconstruction_error_map(duffing_trainer, resolution=1)


def test_rollout_starts_at_x0_next_to_the_true_trajectory(duffing_trainer):
    ts, learned, true = rollout(duffing_trainer, t_end=1.0)
    ts_ref, true_ref = duffing_trajectory(t_end=1.0)
    assert np.allclose(ts, ts_ref) and np.allclose(true, true_ref)
    assert learned.shape == true.shape == (50, 2)
    assert np.allclose(learned[0], DUFFING["x0"])


def test_figures_are_written(tmp_path):
    blobs = linear_boundary(horizon=1.0)
    path = linear_boundary_figure(blobs, tmp_path / "blobs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_reproduce_rejects_unknown_experiment(tmp_path):
    with pytest.raises(ValueError, match="experiment: 'mnist'"):
        reproduce(tmp_path, which="mnist")


def test_reproduce_on_a_tiny_budget_writes_its_figures_and_numbers(tmp_path):
    numbers_path = tmp_path / "numbers.json"
    result = subprocess.run(
        [sys.executable, "-m", "phviz", "reproduce", "--horizon", "1", "--out", str(tmp_path)]
        + ["--json", str(numbers_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "What each preset changes from the paper" in result.stdout
    for name in (
        "paper-blobs",
        "paper-blobs-weight-decay",
        "paper-duffing-training",
        "paper-duffing-field",
    ):
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    numbers = json.loads(numbers_path.read_text())
    assert set(numbers) == {"paper-blobs", "paper-blobs-online", "paper-duffing"}
    for summary in numbers.values():
        assert summary["t_final"] == pytest.approx(1.0)
        assert summary["nfe"] > 0
        assert 0 < summary["final_train_loss"] < summary["initial_train_loss"]
        assert abs(summary["ledger_residual"]) < 0.05 * summary["final_hamiltonian"]
    assert "paper_code" not in numbers["paper-duffing"]  # a short run is not the paper's
    assert 0.9 < numbers["paper-blobs"]["accuracy"] <= 1.0
    rows = numbers["paper-blobs"]["weight_decay_sweep"]
    assert [row["weight_decay"] for row in rows] == list(DEFAULT_DECAYS)
    exact = np.array([row["exact_theta_norm"] for row in rows])
    assert np.all(np.diff(exact) < 0) and exact[-1] > 0  # more decay, smaller θ*
