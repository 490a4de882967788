"""The explorer's gain map without a server: one-off tasks on the pool, the map's
budget, a picked cell restarting the run, optimizer ghosts, and the damping note."""

import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import make_small_config as small_config
from waiting import wait_for

import phviz
from phviz.budget import Budget
from phviz.ghosts import ghost_run, ghost_settings
from phviz.optim import PortHamiltonianSGD
from phviz.scheduler import Scheduler
from phviz.training import Trainer
from phviz.views import Explorer
from phviz.views.gainmap import GainMap
from phviz.views.gainview import gain_values
from phviz.views.modesjob import stiffness_from
from phviz.views.pictures import Stiffness, damping_note


@pytest.fixture
def pool():
    scheduler = Scheduler(workers=1)
    yield scheduler
    scheduler.close()


# ------------------------------------------------------------------ run_once
def test_run_once_runs_on_a_pool_worker_and_leaves_the_pool(pool):
    task = pool.run_once(lambda: (threading.current_thread().name, 6 * 7))
    name, value = task.result(30)
    assert value == 42 and name.startswith("phviz-worker")
    assert wait_for(lambda: pool.jobs == 0, 10) == 0 or pool.jobs == 0
    assert task.done and task not in pool.slices


def test_run_once_hands_back_the_error(pool):
    def fails():
        raise ValueError("Invalid thing: 3")

    task = pool.run_once(fails)
    with pytest.raises(ValueError, match="Invalid thing: 3"):
        task.result(30)
    assert pool.jobs == 0
    assert pool.run_once(lambda: "the pool still works").result(30) == "the pool still works"


# ------------------------------------------------------------------ budget
def test_a_map_over_the_budget_is_refused_by_name():
    budget = Budget(max_map_cells=9, max_map_numbers=1000)
    budget.check_map(9, 100)
    with pytest.raises(ValueError, match="at most 9 cells in a gain map"):
        budget.check_map(16, 10)
    with pytest.raises(ValueError, match=r"at most 1,000 cells × parameters"):
        budget.check_map(4, 300)
    assert Budget.from_settings(["--max-map-cells", "25"]).max_map_cells == 25


def test_the_view_shows_the_budget_message_and_computes_nothing():
    ran = []
    view = GainMap(
        small_config(),
        runner=ran.append,
        budget=Budget(max_map_cells=4),
        parameters=lambda: 10,
        x_values=[0.5, 1.0, 2.0],
        y_values=[1.0, 2.0],
    )
    view.start()
    assert not ran and not view.running
    assert "Too many cells: 6" in view.status and "at most 4 cells" in view.status


def test_the_map_runs_through_the_given_runner_on_the_pool(pool):
    view = GainMap(
        small_config(),
        runner=pool.run_once,
        deferred=True,
        x_values=[0.5, 2.0],
        y_values=[1.0],
        horizon=0.2,
    )
    view.start()
    view.wait(120)
    assert view.result is not None and not view.running, view.status
    assert pool.jobs == 0


def test_gain_values_span_the_current_gain_log_evenly():
    assert gain_values(0.4, 3) == [0.04, 0.4, 4.0]
    assert gain_values(0.0, 3) == [0.1, 1.0, 10.0]


# ------------------------------------------------------------------ picking a cell
def test_a_picked_cell_sets_the_gains_restarts_the_run_and_leaves_its_ghost():
    explorer = Explorer(small_config(horizon=0.0), live=False)
    try:
        session = explorer.session
        assert wait_for(lambda: session.poll() and session.run is not None)
        explorer.gains.map.size = 3
        explorer.gains.map.horizon = 0.3
        explorer.gains.map.start()
        explorer.gains.map.wait(180)
        result = explorer.gains.map.result
        assert result is not None, explorer.gains.map.status
        np.testing.assert_allclose(result.damping.values, [0.04, 0.4, 4.0])
        session.play()  # run a while, so that a restart shows
        assert wait_for(lambda: (explorer.update_view(force=True), session.status())[1]["t"] > 0.5)

        picked = explorer.gains.map.pick(3.0, 0.12)  # nearest on log axes: 4.0, 0.1
        assert picked == {"damping": 4.0, "inertia": 0.1}
        explorer.update_view(force=True)  # the next tick applies it
        assert explorer.settings.damping == 4.0 and explorer.settings.inertia == 0.1
        assert explorer.controls.widgets["damping"].value == 4.0
        assert session.playing and explorer.buttons.label == "Pause"
        # back to t = 0 with the new gains from the start
        assert wait_for(lambda: (explorer.update_view(force=True), session.status())[1]["t"] < 0.5)
        assert wait_for(lambda: session.ask(lambda trainer: float(trainer.system.damping)) == 4.0)
        ghost = explorer.gains.sources["cell"].data
        expected = result.hamiltonian.sel(damping=4.0, inertia=0.1)
        np.testing.assert_allclose(ghost["y"], expected.values)
        np.testing.assert_allclose(ghost["t"], expected.t.values)
    finally:
        explorer.close()


def test_changing_the_model_cancels_the_map():
    explorer = Explorer(small_config(horizon=0.0), live=False)
    try:
        view = explorer.gains.map
        view.horizon = 1e4  # hours: it is cancelled long before
        view.size = 3
        view.start()
        assert view.running
        explorer.settings.hidden = "6"
        view.wait(60)
        explorer.update_view(force=True)
        assert not view.running and view.result is None
        assert "changed" in view.status
    finally:
        explorer.close()


# ------------------------------------------------------------------ optimizer ghosts
def plain_loop(method, settings, trainer, steps, a, c):
    """The same optimizer as a plain torch.optim loop on a fresh model."""
    model = Trainer(trainer.config).model
    torch.nn.utils.vector_to_parameters(trainer.initial_theta.clone(), model.parameters())
    params = list(model.parameters())
    opt = (torch.optim.SGD if method == "sgd-momentum" else torch.optim.Adam)(params, **settings)
    ds = trainer.dataset
    values = []
    for _ in range(steps + 1):
        with torch.no_grad():
            theta = torch.nn.utils.parameters_to_vector(params)
            values.append(
                a * float(ds.loss_fn(model(ds.x_train), ds.y_train))
                + 0.5 * c * float(theta @ theta)
            )
        opt.zero_grad()
        ds.loss_fn(model(ds.x_train), ds.y_train).backward()
        opt.step()
    return values


@pytest.mark.parametrize("method", ["sgd-momentum", "adam"])
def test_ghosts_match_a_plain_torch_optim_loop(method):
    config = small_config(potential_gain=2.0, weight_decay=0.1, step_size=0.05, damping=3.0)
    trainer = Trainer(config)
    ds = trainer.dataset
    steps = 6
    ghost = ghost_run(
        method, trainer.model, trainer.initial_theta, ds.loss_fn, ds.x_train, ds.y_train,
        config, horizon=steps * config.step_size,
    )  # fmt: skip
    settings, _ = ghost_settings(method, config)
    expected = plain_loop(method, settings, trainer, steps, 2.0, 0.1)
    np.testing.assert_allclose(ghost.potential, expected, rtol=1e-5)
    np.testing.assert_allclose(ghost.t, np.arange(steps + 1) * 0.05)
    assert ghost.potential[-1] < ghost.potential[0]


def test_the_sgd_ghost_takes_the_port_hamiltonian_steps_and_says_so():
    config = small_config(potential_gain=2.0, step_size=0.05, damping=3.0, inertia=0.5)
    settings, note = ghost_settings("sgd-momentum", config)
    assert settings["lr"] == pytest.approx(2.0 * 0.05**2 / 0.5)
    assert settings["momentum"] == pytest.approx(1 - 0.05 * 3.0 / 0.5)
    assert "lr = a·h²/m = 0.01" in note and "momentum = 1 − h·B/m = 0.7" in note
    trainer = Trainer(config)
    ds = trainer.dataset
    ghost = ghost_run(
        "sgd-momentum", trainer.model, trainer.initial_theta, ds.loss_fn, ds.x_train,
        ds.y_train, config, horizon=0.25,
    )  # fmt: skip
    # the same five steps of semi-implicit Euler on H
    model = Trainer(config).model
    opt = PortHamiltonianSGD(model.parameters(), 0.05, damping=3.0, inertia=0.5, potential_gain=2.0)
    for _ in range(5):
        opt.zero_grad()
        ds.loss_fn(model(ds.x_train), ds.y_train).backward()
        opt.step()
    with torch.no_grad():
        final = 2.0 * float(ds.loss_fn(model(ds.x_train), ds.y_train))
    assert ghost.potential[-1] == pytest.approx(final, rel=1e-5)


def test_no_sgd_ghost_where_the_momentum_would_be_negative():
    with pytest.raises(ValueError, match="Invalid step for heavy-ball momentum"):
        ghost_settings("sgd-momentum", small_config(step_size=0.1, damping=20.0))
    _, note = ghost_settings("adam", small_config())
    assert "Adam: lr = 0.01" in note


# ------------------------------------------------------------------ the damping note
def test_the_note_names_the_stiffest_and_the_flattest_mode(quadratic_system):
    # Hessian 2·mean(x xᵀ) = diag(1, 9): λ_min = 1, λ_max = 9
    inputs = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    system = quadratic_system(inputs, potential_gain=2.0, inertia=0.5, weight_decay=0.3)
    found = phviz.spectrum(system.model, system.loss_fn, system.inputs, system.targets)
    picture = SimpleNamespace(t=0.0, spectrum=found)  # what the note reads of the picture
    estimate = stiffness_from(picture, system, version=1)
    assert estimate.curvature == pytest.approx(9.0) and estimate.flattest == pytest.approx(1.0)
    stiff, flat = 2 * math.sqrt((2 * 9 + 0.3) * 0.5), 2 * math.sqrt((2 * 1 + 0.3) * 0.5)
    assert estimate.critical == pytest.approx(stiff)
    assert estimate.flattest_critical == pytest.approx(flat)
    note = damping_note(estimate, 3.0)  # between the two: under for one, over for the other
    assert "stiffest mode (λ_max ≈ 9)" in note and f"{stiff:.3g}" in note
    assert "flattest mode (λ_min ≈ 1)" in note and f"{flat:.3g}" in note
    stiffest, flattest = note.split("<br>")
    assert "under-damped" in stiffest and "over-damped" in flattest


def test_a_negative_curvature_is_called_a_saddle():
    estimate = Stiffness(0.0, curvature=2.0, critical=2.8, version=1, flattest=-0.5,
                         flattest_critical=0.0)  # fmt: skip
    note = damping_note(estimate, 1.0)
    assert "saddle direction" in note.split("<br>")[1] and "-0.5" in note
    assert "under-damped" in note.split("<br>")[0]


def test_the_explorer_draws_optimizer_ghosts_made_on_the_pool():
    explorer = Explorer(small_config(horizon=1.0), live=False)
    try:
        gains = explorer.gains
        gains.optimizers.value = True

        def drawn():
            explorer.update_view(force=True)
            return all(len(gains.sources[m].data["t"]) for m in ("sgd-momentum", "adam"))

        assert wait_for(drawn, 120)
        for method in ("sgd-momentum", "adam"):
            t = np.asarray(gains.sources[method].data["t"])
            assert t[0] == 0 and t[-1] == pytest.approx(1.0)
        assert "lr = a·h²/m = 0.0001" in gains.mapping.object  # a = 1, h = 0.01, m = 1
        assert "Adam: lr = 0.01" in gains.mapping.object
        gains.optimizers.value = False
        explorer.update_view(force=True)
        assert not len(gains.sources["adam"].data["t"]) and gains.mapping.object == ""
    finally:
        explorer.close()


def test_gains_set_before_a_reset_hold_from_t_0():
    trainer = Trainer(small_config(damping=0.4))
    trainer.advance(2)
    trainer.set_gains(damping=3.0, inertia=0.5)
    trainer.reset()
    assert trainer.t == 0.0
    assert float(trainer.system.damping) == 3.0 and float(trainer.system.inertia) == 0.5
    assert trainer.config.damping == 3.0
