"""The exponential Runge–Kutta solvers against closed forms: exact for a constant force
at any damping, fourth order on a quadratic loss, stable and accurate when stiff, the
ledger's dissipation booked in closed form, the adaptive one within its tolerance,
ensembles as their single runs, and the paper's online run following its ODE."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import phviz
from phviz.solvers import Plan, Settings, SolverStop, get_solver
from phviz.solvers.exponential import phi_functions

torch.set_num_threads(1)


def linear_system(damping, inertia=0.5, *, constant=False, port=None, weight_decay=0.0):
    """A linear model 3 → 2 with squared error on a fixed batch (``constant``: with the
    mean of its outputs as loss, a force that does not depend on θ), in float64."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20, 2, generator=g, dtype=torch.float64)

    def loss(out, target):
        return out.mean() if constant else ((out - target) ** 2).mean()

    system = phviz.PortHamiltonianSystem(
        model, loss, damping=damping, inertia=inertia, potential_gain=1.5, port=port
    )
    system.set_gains(weight_decay=weight_decay)
    system.set_batch(x, y)
    theta, _ = system.split(system.initial_state())
    p = torch.linspace(-1.0, 1.0, system.dim, dtype=torch.float64)
    return system, theta, p


def exact(system, theta, p, t):
    """(θ, p) at t by the matrix exponential of the whole affine system; the force's
    affine map read off the system itself (columns F(eᵢ) − F(0))."""
    n = system.dim
    with torch.no_grad():
        f0 = system.force(torch.zeros(n, dtype=torch.float64))[1]
        columns = [system.force(e)[1] - f0 for e in torch.eye(n, dtype=torch.float64)]
    u = system.port if isinstance(system.port, torch.Tensor) else torch.zeros(n)
    inverse = (1.0 / torch.as_tensor(system.inertia, dtype=torch.float64)).expand(n)
    gamma = (torch.as_tensor(system.damping, dtype=torch.float64) * inverse).expand(n)
    k = np.zeros((2 * n + 1, 2 * n + 1))
    k[:n, n : 2 * n] = np.diag(inverse.numpy())
    k[n : 2 * n, :n] = torch.stack(columns, 1).numpy()
    k[n : 2 * n, n : 2 * n] = -np.diag(gamma.numpy())
    k[n : 2 * n, -1] = (f0 + u).numpy()
    y = expm(t * k) @ np.concatenate([theta.numpy(), p.numpy(), [1.0]])
    return y[:n], y[n : 2 * n]


def solve(system, theta, p, t, *, solver="exponential", steps=1, intervals=1, **settings):
    """(θ, p) after ``intervals`` intervals of ``steps`` steps to time t, and the ledger:
    H(t) − H(0) + dissipated − supplied, H(0) and the dissipated energy."""
    ends = []
    settings = Settings(**{"step_size": t / intervals / steps, "max_steps": 10**6, **settings})
    plan = Plan(0.0, t / intervals, intervals)
    get_solver(solver).integrate(system, theta, p, plan, settings, ends.append)
    end_theta, end_p = (torch.as_tensor(np.asarray(x)) for x in (ends[-1].theta, ends[-1].p))
    dissipated = sum(float(e.dissipated) for e in ends)
    supplied = sum(float(e.supplied) for e in ends)
    with torch.no_grad():
        h0 = float(system.energy(torch.cat([theta, p])).total)
        h1 = float(system.energy(torch.cat([end_theta, end_p])).total)
    ledger = h1 - h0 + dissipated - supplied
    return end_theta.numpy(), end_p.numpy(), ledger, h0, dissipated


def error(system, theta, p, t, **kw) -> float:
    """The largest difference from the closed form, relative to its largest entry."""
    got = np.concatenate(solve(system, theta, p, t, **kw)[:2])
    want = np.concatenate(exact(system, theta, p, t))
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_phi_functions_are_right_to_rounding_at_every_scale():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60

    def reference(z: float, k: int) -> float:
        z = mpmath.mpf(z)
        if abs(z) < 1:  # the series; the closed form would cancel even at 60 digits
            return float(sum(z**j / mpmath.factorial(j + k) for j in range(40)))
        head = sum(z**j / mpmath.factorial(j) for j in range(k))
        return float((mpmath.exp(z) - head) / z**k)

    zs = -np.array([0, 1e-300, 1e-9, 1e-3, 0.5, 1.999999, 2.0, 2.000001, 3.0, 20.0, 1e3, 1e8])
    phis = phi_functions(zs, 7)
    for k in range(7):
        for z, value in zip(zs, phis[k], strict=True):
            assert value == pytest.approx(reference(z, k), rel=4e-15, abs=1e-300), (k, z)


@pytest.mark.parametrize("gamma_h", [0.0, 1.0, 1e4])
def test_exact_for_a_constant_force_at_any_damping_and_its_dissipation_too(gamma_h):
    """A loss linear in θ and a constant port: the step is exact, however stiff, and so is
    the dissipated energy it books (the ledger closes to rounding)."""
    h, inertia = 0.1, 0.5
    u = torch.linspace(0.3, -0.2, 8, dtype=torch.float64)
    system, theta, p = linear_system(gamma_h / h * inertia, inertia, constant=True, port=u)
    assert error(system, theta, p, 5 * h, steps=5) < 1e-14
    _, _, ledger, h0, dissipated = solve(system, theta, p, 5 * h, steps=5)
    assert abs(ledger) < 1e-14 * max(1.0, abs(h0), dissipated)
    if gamma_h > 0:
        assert dissipated > 0.1  # the damping did drain energy


def test_fourth_order_on_a_quadratic_loss_at_moderate_damping():
    """γh from 1 down to 0.25, weight decay on: halving h divides the error by about 16."""
    system, theta, p = linear_system(damping=2.5, inertia=0.5, weight_decay=0.3)
    errors = [error(system, theta, p, 2.0, steps=steps) for steps in (10, 20, 40)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert errors[0] > 1e-8  # above rounding: the ratios measure the scheme
    assert all(14 < r < 18 for r in ratios), ratios


def test_stable_and_within_a_millionth_of_the_closed_form_at_gamma_h_1e4():
    """At γh = 1e4 the momenta follow the force quasi-statically (θ̇ ≈ F/B) and the step
    reproduces that drift; the error stays at the size of the damped start's layer."""
    h, inertia = 1.0, 0.5
    system, theta, p = linear_system(damping=1e4 / h * inertia, inertia=inertia)
    got_theta, got_p, ledger, h0, dissipated = solve(system, theta, p, 200 * h, steps=200)
    want_theta, want_p = exact(system, theta, p, 200 * h)
    assert np.abs(got_theta - want_theta).max() < 1e-6 * np.abs(want_theta).max()
    assert np.abs(got_p - want_p).max() < 1e-6 * np.abs(want_p).max()
    assert np.abs(want_theta - theta.numpy()).max() > 1e-2  # it did drift
    assert abs(ledger) < 1e-7 * h0 and dissipated > 0.1 * h0


def test_the_ledger_residual_shrinks_with_h_and_does_not_grow_with_stiffness():
    """Moderate damping: the residual falls by more than 50 when h falls by 4. Stiff
    (γh from 1e2 to 1e4, at the same h): it stays small and falls as γh grows."""
    moderate, theta, p = linear_system(damping=2.5, inertia=0.5)
    residuals = [abs(solve(moderate, theta, p, 2.0, steps=s)[2]) for s in (10, 20, 40)]
    assert residuals[0] > residuals[1] > residuals[2] and residuals[0] / residuals[2] > 50
    stiff = []
    for gamma_h in (1e2, 1e3, 1e4):
        system, theta, p = linear_system(damping=gamma_h / 0.1 * 0.5, inertia=0.5)
        _, _, ledger, h0, _ = solve(system, theta, p, 2.0, steps=20)
        stiff.append(abs(ledger) / h0)
    assert stiff[0] < 1e-5 and stiff[0] > stiff[1] > stiff[2], stiff


def test_adaptive_meets_its_tolerance_on_the_linear_case_and_spends_what_it_needs():
    """γ from 0.2 to 600 (a fast transient at the start, which step doubling sees)."""
    damping = torch.tensor([0.1, 3.0, 300.0, 0.1, 3.0, 30.0, 300.0, 1.0], dtype=torch.float64)
    system, theta, p = linear_system(damping=damping)
    costs = {}
    for rtol in (1e-4, 1e-7):
        system.nfe = 0
        err = error(
            system, theta, p, 4.0, solver="adaptive_exponential", rtol=rtol, atol=rtol * 1e-2
        )
        assert err < rtol, (rtol, err)
        costs[rtol] = system.nfe
    assert costs[1e-7] > 4 * costs[1e-4] > 4 * 15  # it refined, and more when asked


def test_adaptive_stops_at_max_steps_naming_the_time():
    system, theta, p = linear_system(damping=1.0)
    with pytest.raises(SolverStop) as stop:
        solve(
            system,
            theta,
            p,
            4.0,
            solver="adaptive_exponential",
            rtol=1e-12,
            atol=1e-14,
            max_steps=3,
        )
    assert stop.value.reason == "steps" and 0.0 <= stop.value.t < 4.0


def test_tensors_and_per_coordinate_gains_take_the_same_steps():
    """Float gains (one product per combination), per-coordinate gains (broadcast) and
    tensors (a port that is a function of the state) agree to rounding."""
    system, theta, p = linear_system(damping=40.0, weight_decay=0.1)
    want = np.concatenate(solve(system, theta, p, 1.0, steps=10)[:2])
    system.set_gains(damping=torch.full((system.dim,), 40.0, dtype=torch.float64))
    per_coordinate = np.concatenate(solve(system, theta, p, 1.0, steps=10)[:2])
    system.port = lambda t, theta, p: torch.zeros_like(theta)
    assert not system.takes_arrays
    tensors = np.concatenate(solve(system, theta, p, 1.0, steps=10)[:2])
    np.testing.assert_allclose(per_coordinate, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(tensors, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("solver", ["exponential", "adaptive_exponential"])
def test_an_ensemble_integrates_each_member_as_its_single_run(small_config, solver):
    config = small_config(batch_size=32, solver=solver, step_size=0.05, dtype="float64")
    gains = dict(damping=[0.5, 60.0], inertia=[0.5, 2.0])
    ds = phviz.sweep(config, horizon=0.6, curvature=False, **gains)
    assert ds.attrs["solver"] == solver
    for i, damping in enumerate(gains["damping"]):
        for j, inertia in enumerate(gains["inertia"]):
            run = dict(config.values(), damping=damping, inertia=inertia)
            trainer = phviz.Trainer(phviz.make_config(**run))
            records = [trainer.last, *trainer.run(0.6)]
            cell = ds.isel(damping=i, inertia=j)
            want = [r.hamiltonian for r in records]
            # members share the adaptive solver's steps: each within the tolerances
            rtol = 1e-10 if solver == "exponential" else 1e-4
            np.testing.assert_allclose(cell.hamiltonian.values, want, rtol=rtol)
    ends = ds.hamiltonian.values[..., -1]
    assert ends.max() - ends.min() > 0.005  # the members' runs do differ


def test_the_papers_online_run_follows_its_ode_and_keeps_the_ledger():
    """paper-blobs-online after 200 samples: within 1e-4 of the equations integrated
    tightly (LSODA, switching batches as the Trainer does), ledger within 1e-4·H(0)."""
    samples = 200
    trainer = phviz.Trainer(phviz.make_config("paper-blobs-online"))
    assert trainer.config.solver == "exponential"
    records = trainer.advance(samples)
    assert max(abs(r.ledger_residual) for r in records) <= 1e-4 * trainer.h0
    reference = phviz.Trainer(phviz.make_config("paper-blobs-online"))
    system, field = reference.system, reference.system.array_ledger_field()

    def rates(t, y):
        out = np.empty_like(y)
        field(t, y, out)
        return out

    y = reference.xi.numpy().copy()
    dt = reference.config.switching_interval
    for k in range(samples):
        if k > 0:
            reference.batches.next()
            reference.batches.hold(system)
        y = solve_ivp(rates, (k * dt, (k + 1) * dt), y, method="LSODA", rtol=1e-10, atol=1e-12)
        y = y.y[:, -1]
    state = trainer.xi.numpy()
    assert np.abs(state - y).max() <= 1e-4 * np.abs(y).max()
    assert np.abs(state - reference.xi.numpy()).max() > 0.1  # the state did move
