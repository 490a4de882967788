"""Hybrid mini-batch runs: switches, the ledger, pause/resume, divergence, gains."""

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from phviz import Trainer, TrainingError, make_config
from phviz.training.run import GPU_WORK_THRESHOLD, resolve_device

torch.set_num_threads(1)


def small(**overrides):
    values = dict(
        dataset="moons",
        n_samples=120,
        hidden="8",
        activation="tanh",
        damping=0.5,
        switching_interval=0.2,
        eval_every=5,
    )
    values.update(overrides)
    return make_config(**values)


def test_full_batch_run_learns_and_keeps_the_ledger():
    trainer = Trainer(small(horizon=30.0, rtol=1e-6, atol=1e-8, dtype="float64"))
    first = trainer.last
    records = trainer.run()
    assert len(records) == 150 and records[-1].t == pytest.approx(30.0)
    assert records[-1].train_loss < 0.6 * first.train_loss
    h = np.array([r.hamiltonian for r in records])
    assert np.diff(h).max() < 1e-9  # full batch, no port: H never increases
    assert max(abs(r.ledger_residual) for r in records) < 1e-5
    assert records[-1].dissipated == pytest.approx(first.hamiltonian - h[-1], rel=1e-4)
    assert all(not r.switched for r in records) and records[-1].switch_jumps == 0.0


def test_minibatch_hamiltonian_jumps_only_at_switches():
    trainer = Trainer(small(batch_size=30, dtype="float64", rtol=1e-8, atol=1e-10))
    assert trainer.batches_per_epoch == 3
    previous = trainer.last
    for _ in range(7):
        h_end_before = float(trainer.system.hamiltonian(trainer.xi))
        record = trainer.step()
        assert record.switched == (record.interval > 1)
        # the jump recorded at the switch is exactly H_k(ξ) − H_{k−1}(ξ) at that instant
        jump = record.switch_jumps - previous.switch_jumps
        if record.switched:
            assert jump != 0.0
        # within the interval, H_k changed only by dissipation (the ledger closes)
        dissipated = record.dissipated - previous.dissipated
        assert record.hamiltonian == pytest.approx(h_end_before + jump - dissipated, abs=1e-7)
        previous = record
    assert abs(previous.ledger_residual) < 1e-6
    assert previous.epoch == pytest.approx(7 / 3)


def test_hamiltonian_is_continuous_within_an_interval():
    trainer = Trainer(small(batch_size=30, dtype="float64"))
    trainer.step()
    system = trainer.system
    ts = torch.linspace(0.0, 0.2, 201, dtype=torch.float64)
    xs = odeint(system, trainer.xi, ts, rtol=1e-8, atol=1e-10)
    h = torch.stack([system.hamiltonian(x) for x in xs])
    assert float(torch.diff(h).abs().max()) < 5 * float(h.max() - h.min()) / 200 + 1e-12


def test_minibatch_pause_and_resume_equals_one_run():
    straight = Trainer(small(batch_size=25))
    straight.advance(17)
    interrupted = Trainer(small(batch_size=25))
    interrupted.advance(6)
    interrupted.advance(1)
    interrupted.advance(10)
    assert torch.equal(straight.xi, interrupted.xi)
    assert straight.last.dissipated == interrupted.last.dissipated


def test_full_batch_chunks_agree_within_tolerance():
    one = Trainer(small(dtype="float64", rtol=1e-9, atol=1e-11))
    one.advance(20)
    chunked = Trainer(small(dtype="float64", rtol=1e-9, atol=1e-11))
    for _ in range(4):
        chunked.advance(5)
    assert torch.allclose(one.xi, chunked.xi, rtol=1e-6, atol=1e-8)


def test_gains_change_at_the_next_interval_without_reset():
    trainer = Trainer(small())
    trainer.advance(3)
    t = trainer.t
    trainer.set_gains(damping=2.5, inertia=0.5)
    assert trainer.system.damping == 0.5  # not yet: the interval in flight keeps its gains
    record = trainer.step()
    assert trainer.system.damping == 2.5 and trainer.system.inertia == 0.5
    assert trainer.config.damping == 2.5
    assert record.t == pytest.approx(t + 0.2)  # no reset
    with pytest.raises(ValueError, match=r"Invalid damping: -1\.0"):
        trainer.set_gains(damping=-1.0)
    trainer.step()
    assert trainer.system.damping == 2.5  # the bad value never reached the system


def test_new_gains_stay_pending_until_they_are_in_the_system():
    """Another thread that sees ``pending_gains`` False must see the new gains."""
    trainer = Trainer(small())
    set_gains, seen = trainer.system.set_gains, []

    def watched(**gains):
        seen.append(trainer.pending_gains)  # while the gains go in
        set_gains(**gains)

    trainer.system.set_gains = watched
    trainer.set_gains(damping=2.5)
    assert trainer.pending_gains
    trainer.step()
    assert seen == [True] and not trainer.pending_gains
    assert trainer.system.damping == 2.5


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_finite_state():
    trainer = Trainer(
        small(
            dataset="paper-blobs",
            n_samples=200,
            architecture="linear",
            solver="euler",
            step_size=0.2,
            potential_gain=1e6,
            damping=0.0,
        )
    )
    good = None
    with pytest.raises(TrainingError) as info:
        for _ in range(50):
            good = trainer.step()
    err = info.value
    assert err.kind == "diverged"
    message = str(err)
    for words in ("diverged", "damping=0", "potential gain=1e+06", "solver=euler", "Try"):
        assert words in message
    assert good is not None and good.interval > 0  # some intervals went well first
    # the trainer stands where the last good interval left it
    assert trainer.last is good and trainer.interval == good.interval and trainer.t == good.t
    assert torch.isfinite(trainer.xi).all()
    theta = trainer.xi[: trainer.system.dim].float().numpy()
    np.testing.assert_array_equal(theta, good.theta)


def test_full_batch_divergence_keeps_the_intervals_before_it():
    trainer = Trainer(
        small(
            dataset="paper-blobs",
            n_samples=200,
            architecture="linear",
            solver="rk4",
            step_size=0.1,
            potential_gain=3e4,
            damping=0.0,
        )
    )
    with pytest.raises(TrainingError):
        trainer.advance(400)
    assert torch.isfinite(trainer.xi).all()
    assert trainer.interval > 0  # the finite intervals before the blow-up were kept
    assert math.isfinite(trainer.last.hamiltonian)


def test_solver_that_cannot_keep_its_tolerance_stops_clearly():
    trainer = Trainer(small(rtol=1e-12, atol=1e-14, max_steps=10, switching_interval=5.0))
    with pytest.raises(TrainingError, match="could not keep rtol=1e-12") as info:
        trainer.step()
    assert info.value.kind == "solver"
    assert "Try looser tolerances" in str(info.value)
    assert trainer.t == 0.0 and torch.isfinite(trainer.xi).all()


def test_reset_returns_to_the_initial_state():
    trainer = Trainer(small(batch_size=30))
    first = trainer.last
    trainer.advance(5)
    trainer.reset()
    assert trainer.t == 0.0 and trainer.interval == 0
    np.testing.assert_array_equal(trainer.last.theta, first.theta)
    again = trainer.advance(5)
    fresh = Trainer(small(batch_size=30)).advance(5)
    np.testing.assert_array_equal(again[-1].theta, fresh[-1].theta)


def test_records_carry_what_the_views_need():
    trainer = Trainer(small(n_tracked=5, eval_every=2))
    r1, r2 = trainer.advance(2)
    assert r1.theta_sample.shape == (5,) and r1.p_sample.shape == (5,)
    np.testing.assert_array_equal(r2.theta[trainer.tracked], r2.theta_sample)
    assert math.isnan(r1.accuracy) and 0.0 <= r2.accuracy <= 1.0
    assert r2.nfe > r1.nfe > 0  # one solve's evaluations are spread over its intervals
    assert r2.kinetic + r2.potential == pytest.approx(r2.hamiltonian)
    summary = trainer.summary()
    for key in (
        "final_train_loss",
        "wall_seconds",
        "nfe",
        "t_final",
        "final_hamiltonian",
        "test_loss",
        "accuracy",
    ):
        assert key in summary


def test_unavailable_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="no CUDA device"):
        Trainer(small(device="cuda"))


def test_auto_device_weighs_the_work(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", 338 * 399).type == "cpu"  # the paper's Duffing MLP
    assert resolve_device("auto", GPU_WORK_THRESHOLD - 1).type == "cpu"
    assert resolve_device("auto", GPU_WORK_THRESHOLD).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", 10 * GPU_WORK_THRESHOLD).type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_run_matches_cpu():
    cpu = Trainer(small(device="cpu", dtype="float64"))
    gpu = Trainer(small(device="cuda", dtype="float64"))
    assert gpu.xi.device.type == "cuda"
    cpu.advance(5)
    gpu.advance(5)
    assert torch.allclose(gpu.xi.cpu(), cpu.xi, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "solver, rtol, ledger_tolerance",
    [
        ("dopri5", 1e-7, 1e-6),
        ("bosh3", 1e-6, 1e-5),
        ("adaptive_heun", 1e-5, 1e-4),
        ("rk4", 1e-7, 1e-6),
        ("midpoint", 1e-7, 1e-3),
        ("euler", 1e-7, 5e-2),
    ],
)
def test_every_solver_learns_and_its_ledger_measures_its_error(solver, rtol, ledger_tolerance):
    """Fixed-step solvers take step 0.05 (rtol is ignored by them)."""
    config = small(
        solver=solver, step_size=0.05, rtol=rtol, atol=1e-9, dtype="float64", switching_interval=0.5
    )
    trainer = Trainer(config)
    first = trainer.last
    last = trainer.advance(16)[-1]
    assert last.train_loss < 0.9 * first.train_loss
    assert abs(last.ledger_residual) < ledger_tolerance
    if solver == "euler":  # a first-order method leaves a visible ledger error
        assert abs(last.ledger_residual) > 1e-6


def test_gain_changes_are_booked_so_the_ledger_balances_through_all_of_them():
    trainer = Trainer(small(batch_size=30, rtol=1e-8, atol=1e-10, dtype="float64"))
    h0 = trainer.last.hamiltonian
    changes = [
        dict(inertia=0.5, potential_gain=2.0),
        dict(damping=1.5, weight_decay=0.01),
        dict(inertia=2.0),
        dict(potential_gain=0.5, weight_decay=0.0, damping=0.2),
        dict(inertia={"0": 0.3}, weight_decay={"2": 0.05}),
    ]
    for change in changes:
        trainer.advance(3)
        trainer.set_gains(**change)
    records = trainer.advance(3)
    last = records[-1]
    assert abs(last.gain_jumps) > 0.01 * h0  # the changes did move H
    assert abs(last.ledger_residual) <= 1e-3 * h0
    books = last.hamiltonian - h0 + last.dissipated - last.supplied
    assert books - last.switch_jumps - last.gain_jumps == pytest.approx(last.ledger_residual)


def leapfrog_run(step_size, **overrides):
    values = dict(solver="conformal_leapfrog", step_size=step_size, dtype="float64", horizon=4.0)
    values.update(overrides)
    trainer = Trainer(small(**values))
    trainer.run()
    return trainer


def test_conformal_leapfrog_ledger_error_shrinks_at_second_order():
    coarse = leapfrog_run(0.05).last
    fine = leapfrog_run(0.025).last
    assert fine.dissipated > 0 and abs(coarse.ledger_residual) > 0
    ratio = abs(coarse.ledger_residual) / abs(fine.ledger_residual)
    assert 3.0 < ratio < 5.5  # halving h quarters the error
    assert fine.nfe == 8 * 20 + 1  # one gradient a step (the last one reused)


def test_conformal_leapfrog_is_stable_for_stiff_damping():
    trainer = leapfrog_run(0.05, damping=1e4, batch_size=30)
    last = trainer.last
    assert math.isfinite(last.hamiltonian) and last.hamiltonian <= trainer.h0
    assert last.momentum_norm < 1e-3  # the damping drains p within a step
    assert abs(last.ledger_residual) <= 1e-3 * trainer.h0


def test_too_many_steps_is_reported_with_the_gains_and_what_to_try():
    trainer = Trainer(
        small(dataset="paper-blobs", n_samples=200, architecture="linear", damping=500.0)
    )
    trainer.config.max_steps = 10
    with pytest.raises(TrainingError, match=r"within 10 steps.*damping=500.*conformal_leapfrog"):
        trainer.step()
    fixed = Trainer(small(solver="rk4", step_size=0.001, max_steps=50))
    with pytest.raises(TrainingError, match=r"needs 200 steps.*max_steps=50"):
        fixed.step()


def test_uniform_initial_momenta_are_seeded_and_in_the_unit_interval():
    a = Trainer(small(initial_momentum="uniform", momentum_seed=3))
    b = Trainer(small(initial_momentum="uniform", momentum_seed=3))
    _, p = a.system.split(a.xi)
    assert torch.equal(a.xi, b.xi) and float(p.min()) >= 0 and float(p.max()) < 1
    assert float(p.std()) > 0.2
    assert a.last.kinetic == pytest.approx(0.5 * float(p @ p))


def test_notebook_initial_state_lands_in_the_linear_models_layout():
    trainer = Trainer(make_config("paper-blobs-online", dtype="float64"))
    weight, bias = trainer.model[0].weight, trainer.model[0].bias
    # the notebook's output i is w_i1·u1 + w_i2·u2 + bias_i
    assert weight.tolist() == [[0.6, -2.3], [-1.1, -1.2]] and bias.tolist() == [-0.1, 0.3]
    _, p = trainer.system.split(trainer.xi)
    assert p.tolist() == [-1.2, 0.3, 1.6, -0.4, 0.1, 1.6]
    assert trainer.batch_size == 1 and trainer.config.shuffle is False
    x = trainer.dataset.x_train
    trainer.step()
    trainer.step()
    assert torch.equal(trainer.system.inputs, x[1:2])  # the data's own order


def test_radau_solves_stiff_damping_with_far_fewer_evaluations_and_keeps_the_ledger():
    def run(solver):
        trainer = Trainer(
            small(
                dataset="paper-blobs",
                n_samples=200,
                architecture="linear",
                damping=100.0,
                inertia=0.5,
                solver=solver,
                switching_interval=0.5,
                dtype="float64",
            )
        )
        trainer.advance(2)
        return trainer

    radau, dopri5 = run("radau"), run("dopri5")
    assert radau.last.nfe < dopri5.last.nfe / 3
    assert abs(radau.last.ledger_residual) <= 1e-3 * radau.h0
    np.testing.assert_allclose(radau.last.theta, dopri5.last.theta, atol=1e-3)


def test_out_of_memory_is_reported_as_such(monkeypatch):
    trainer = Trainer(small())

    def exhausted(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(trainer.system, "ledger_field", exhausted)
    monkeypatch.setattr(trainer.system, "array_ledger_field", lambda: exhausted)
    message = r"Out of memory on cpu at t = 0.*smaller batch"
    with pytest.raises(TrainingError, match=message) as info:
        trainer.step()
    assert info.value.kind == "memory"


def test_step_limit_holds_per_interval_over_a_multi_interval_solve():
    """Eight intervals in one full-batch solve: the limit is on each interval's steps.

    dopri5 takes about 25 to 45 steps an interval here, some 250 in all; fixed rk4 takes
    exactly 10 (Δt/h). Within the limit, the one solve runs through unchanged: its
    state is bit for bit that of a run without a practical limit.
    """
    adaptive = dict(solver="dopri5", switching_interval=2.0, rtol=1e-10, atol=1e-12)
    fixed = dict(solver="rk4", switching_interval=0.5, step_size=0.05)
    for values, within in ((adaptive, 60), (fixed, 12)):
        free = Trainer(small(dtype="float64", **values))
        free.advance(8)
        limited = Trainer(small(dtype="float64", max_steps=within, **values))
        limited.advance(8)
        assert limited.interval == 8
        assert torch.equal(limited.xi, free.xi)
    too_tight = Trainer(small(dtype="float64", max_steps=20, **adaptive))
    with pytest.raises(TrainingError, match=r"could not keep rtol=1e-10.*within 20 steps") as info:
        too_tight.advance(8)
    assert info.value.kind == "solver" and too_tight.interval < 8
    too_fine = Trainer(small(dtype="float64", max_steps=12, **{**fixed, "step_size": 0.04}))
    with pytest.raises(TrainingError, match=r"needs 13 steps per switching interval.*=12"):
        too_fine.advance(8)
    assert too_fine.interval == 0


def test_fixed_step_needing_exactly_max_steps_runs():
    trainer = Trainer(small(solver="rk4", step_size=0.02, max_steps=10, dtype="float64"))
    trainer.advance(8)
    assert trainer.interval == 8


def test_step_limit_holds_under_python_O_where_asserts_vanish():
    import subprocess
    import sys

    code = (
        "from phviz import Trainer, TrainingError, make_config\n"
        "t = Trainer(make_config(dataset='paper-blobs', n_samples=200, architecture='linear',"
        " damping=500.0, max_steps=10))\n"
        "try:\n    t.step()\nexcept TrainingError as e:\n    print(e.kind)\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "solver", out.stderr


def test_online_run_with_a_record_stride_equals_one_record_an_interval():
    """Strided records change nothing but the records: same state, same ledger."""
    values = dict(
        dataset="paper-blobs",
        n_samples=80,
        architecture="linear",
        batch_size=1,
        solver="conformal_leapfrog",
        switching_interval=0.1,
        step_size=0.05,
        damping=20.0,
        dtype="float64",
        eval_every=25,
    )
    stepped = Trainer(small(**values))
    each = [stepped.step() for _ in range(130)]
    strided = Trainer(small(**values))
    kept = strided.run(13.0, record_every=20)
    assert [r.interval for r in kept] == [20, 25, 40, 50, 60, 75, 80, 100, 120, 125, 130]
    torch.testing.assert_close(strided.xi, stepped.xi, rtol=0, atol=1e-12)
    for key in ("hamiltonian", "dissipated", "switch_jumps", "ledger_residual", "train_loss"):
        assert getattr(strided.last, key) == pytest.approx(getattr(each[-1], key), abs=1e-12)
    assert strided.last.nfe == each[-1].nfe == 3 * 130  # a switch, then two steps
    assert kept[1].accuracy == pytest.approx(each[24].accuracy)
    assert abs(each[-1].ledger_residual) < 1e-3 * stepped.h0


def test_online_run_keeps_the_splitting_step_of_the_dynamics():
    """Each interval is the splitting step on its own sample, the switches booked as jumps."""
    from phviz.solvers import conformal_symplectic_step

    values = dict(
        dataset="paper-blobs",
        n_samples=40,
        architecture="linear",
        batch_size=1,
        shuffle=False,
        solver="conformal_leapfrog",
        switching_interval=0.1,
        step_size=0.1,
        damping=5.0,
        weight_decay=0.01,
        dtype="float64",
    )
    trainer = Trainer(small(**values))
    trainer.run(3.0, record_every=7)
    reference = Trainer(small(**values))
    system, ds = reference.system, reference.dataset
    theta, p = system.split(reference.xi)
    dissipated = jumps = 0.0
    for k in range(30):
        i = k % len(ds.x_train)
        if k > 0:
            before = float(system.energy(torch.cat([theta, p])).total)
            system.set_batch(ds.x_train[i : i + 1], ds.y_train[i : i + 1])
            jumps += float(system.energy(torch.cat([theta, p])).total) - before

        def force(q):
            return -system.loss_and_gradient(q)[1]

        theta, p, drained = conformal_symplectic_step(
            theta, p, force, 0.1, system.damping, system.inertia
        )
        dissipated += float(drained)
    torch.testing.assert_close(trainer.xi, torch.cat([theta, p]), rtol=0, atol=1e-12)
    assert trainer.last.dissipated == pytest.approx(dissipated, abs=1e-12)
    assert trainer.last.switch_jumps == pytest.approx(jumps, abs=1e-12)


def test_online_divergence_with_a_record_stride_keeps_the_last_finite_interval():
    values = dict(
        dataset="paper-blobs",
        n_samples=200,
        architecture="linear",
        solver="conformal_leapfrog",
        step_size=0.2,
        potential_gain=1e4,
        damping=0.0,
        batch_size=10,
    )
    trainer = Trainer(small(**values))
    with pytest.raises(TrainingError) as info:
        trainer.run(200.0, record_every=7)
    assert info.value.kind == "diverged"
    assert 0 < trainer.interval < 1000 and trainer.last.interval == trainer.interval
    assert torch.isfinite(trainer.xi).all()
    np.testing.assert_array_equal(trainer.last.theta, trainer.xi[: trainer.system.dim].float())
    assert info.value.records[-1] is trainer.last
    assert trainer.t == pytest.approx(trainer.interval * 0.2)


class Counted:
    """y′ = Ky as torchdiffeq and phviz's dopri5 each call it, counting evaluations."""

    def __init__(self, matrix: np.ndarray):
        self.matrix, self.tensor, self.calls = matrix, torch.from_numpy(matrix), 0

    def __call__(self, t, y, out=None):
        self.calls += 1
        if out is None:
            return self.tensor @ y
        np.dot(self.matrix, y, out=out)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_phviz_dopri5_is_torchdiffeqs_on_the_linear_case(dtype):
    """The same steps (evaluation for evaluation) and the same numbers, to rounding."""
    from scipy.linalg import expm

    from phviz.solvers.dopri5 import dopri5

    g = np.random.default_rng(4)
    # a damped oscillator's block form: θ̇ = p, ṗ = −Aθ − Bp, with A, B positive
    a = g.standard_normal((3, 3))
    matrix = np.block([[np.zeros((3, 3)), np.eye(3)], [-(a @ a.T + np.eye(3)), -0.3 * np.eye(3)]])
    matrix = matrix.astype(dtype)
    y0 = g.standard_normal(6).astype(dtype)
    times = [0.0, 0.5, 1.7, 4.0, 9.0]
    ours, theirs = Counted(matrix), Counted(matrix)
    y = dopri5(ours, y0, times, rtol=1e-6, atol=1e-8)
    t = torch.tensor(times, dtype=torch.float64)
    expected = odeint(theirs, torch.from_numpy(y0), t, rtol=1e-6, atol=1e-8)
    assert ours.calls == theirs.calls > 50
    rounding = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, expected.numpy(), **rounding)
    exact = np.stack([expm(t * matrix.astype(np.float64)) @ y0 for t in times])
    np.testing.assert_allclose(y, exact, rtol=1e-4, atol=1e-5)  # and within its tolerance


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_phviz_dopri5_is_torchdiffeqs_on_the_duffing_network(dtype):
    """The paper's Duffing run, its ledger included: torchdiffeq's evaluations and numbers."""
    from phviz.solvers import ODESolver, Plan, Settings, get_solver

    config = make_config("paper-duffing", device="cpu", dtype=dtype, step_control="integral")
    trainer = Trainer(config)
    theta, p = trainer.system.split(trainer.xi)
    runs = []
    for solver in (get_solver("dopri5"), ODESolver("dopri5", "", adaptive=True)):
        trainer.system.nfe = 0
        ends = []
        plan = Plan(0.0, config.switching_interval, 3)
        solver.integrate(trainer.system, theta, p, plan, Settings.of(config), ends.append)
        ys = torch.stack(
            [torch.cat([e.theta, e.p, e.dissipated[None], e.supplied[None]]) for e in ends]
        )
        runs.append((ys, trainer.system.nfe))
    (ours, ours_nfe), (theirs, theirs_nfe) = runs
    assert ours_nfe == theirs_nfe > 50
    rounding = dict(rtol=1e-11, atol=1e-11) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours, theirs, **rounding)
    assert float(ours[-1, -2]) > 1.0  # the dissipated energy moved: a real comparison


def test_stabilized_step_control_stops_the_rejections_where_stability_limits_the_step():
    """y′ = Ky with a mode that has died out (−200) beside a slow one (−0.5): past the
    transient, dopri5's step is held at its stability bound for the fast mode. The
    integral rule grows the step over it, is rejected and shrinks, again and again."""
    from scipy.linalg import expm

    from phviz.solvers.dopri5 import dopri5

    matrix = np.diag([-200.0, -0.5])
    y0, times = np.ones(2), [0.0, 10.0, 20.0]
    runs = {}
    for stabilized in (False, True):
        field, tried = Counted(matrix), []
        y = dopri5(
            field, y0, times, 1e-6, 1e-8, lambda t, dt, tried=tried: tried.append(t), stabilized
        )
        rejected = sum(a == b for a, b in zip(tried, tried[1:], strict=False))
        runs[stabilized] = (field.calls, rejected)
        exact = np.stack([expm(t * matrix) @ y0 for t in times])
        np.testing.assert_allclose(y, exact, rtol=1e-6, atol=1e-7)
    (calls, rejected), (calls_pi, rejected_pi) = runs[False], runs[True]
    assert rejected > 100 and rejected_pi < rejected / 20
    assert calls_pi < 0.9 * calls


def test_the_duffing_preset_steps_by_the_stabilized_control_and_keeps_its_books():
    """Fewer evaluations than the integral rule to T = 100 (the first tens of time
    units are limited by accuracy, the rest by stability), the ledger within 1e-3·H(0)."""
    runs = {}
    for control in ("integral", "stabilized"):
        trainer = Trainer(make_config("paper-duffing", step_control=control))
        last = trainer.run()[-1]
        assert abs(last.ledger_residual) < 1e-3 * trainer.h0
        runs[control] = last
    assert runs["stabilized"].nfe < 0.9 * runs["integral"].nfe
    assert runs["stabilized"].train_loss == pytest.approx(runs["integral"].train_loss, rel=1e-2)


def test_phviz_dopri5_stops_at_a_blow_up_and_names_it():
    """y′ = y² from y(0) = 1 leaves every bound at t = 1: the steps shrink to nothing."""
    from phviz.solvers.dopri5 import dopri5

    def square(t, y, out):
        np.multiply(y, y, out=out)

    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatingPointError):
        dopri5(square, np.ones(1), [0.0, 2.0], rtol=1e-6, atol=1e-9)
    y = dopri5(square, np.ones(1), [0.0, 0.5, 0.9], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(y[:, 0], [1.0, 2.0, 10.0], rtol=1e-6)  # y = 1 / (1 − t)


def test_a_diverging_dopri5_run_stops_clearly_and_keeps_a_finite_state():
    trainer = Trainer(
        small(dataset="paper-blobs", n_samples=200, architecture="linear", potential_gain=1e7)
    )
    trainer.config.max_steps = 50
    with pytest.raises(TrainingError) as info:
        trainer.advance(3)
    assert info.value.kind in ("solver", "diverged")
    assert torch.isfinite(trainer.xi).all() and math.isfinite(trainer.last.hamiltonian)


def test_the_splitting_steps_alike_on_arrays_and_on_tensors():
    """On the CPU the force loop steps NumPy arrays; a port that is a function of the
    state makes it step tensors. The same constant push either way: the same run."""
    from phviz.solvers import Plan, Settings, get_solver

    trainer = Trainer(small(dtype="float64", batch_size=30))
    system = trainer.system
    u = torch.linspace(-0.2, 0.3, system.dim, dtype=torch.float64)
    theta, p = system.split(trainer.xi)
    runs = []
    for port in (u, lambda t, q, m: u):
        system.port = port
        ends = []
        plan = Plan(0.0, 0.2, 4, batches=type(trainer.batches).of(trainer.config, trainer.dataset))
        plan.batches.hold(system)
        get_solver("conformal_leapfrog").integrate(
            system, theta, p, plan, Settings(step_size=0.05), ends.append
        )
        runs.append(ends)
    assert system.takes_arrays is False  # the second run stepped tensors
    for a, b in zip(*runs, strict=True):
        assert isinstance(a.theta, np.ndarray) and isinstance(b.theta, torch.Tensor)
        np.testing.assert_allclose(a.theta, b.theta.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.p, b.p.numpy(), rtol=1e-12, atol=1e-14)
        assert float(a.supplied) == pytest.approx(float(b.supplied), rel=1e-10)
        assert float(a.jump) == pytest.approx(float(b.jump), rel=1e-10, abs=1e-14)
