"""The energy kick: ΔE into the momenta through the port, booked in the ledger."""

import math

import numpy as np
import pytest
import torch
from waiting import wait_for

import phviz
from phviz.views.live import LiveSession

# Every way a run is integrated: adaptive odeint (full batch and mini-batches), the
# conformal-symplectic splitting in full batch and online.
PATHS = {
    "odeint": dict(solver="dopri5"),
    "odeint-minibatch": dict(solver="dopri5", batch_size=32),
    "splitting": dict(solver="conformal_leapfrog"),
    "splitting-online": dict(solver="conformal_leapfrog", batch_size=16),
}


def trainer(path: str, **settings) -> phviz.Trainer:
    return phviz.Trainer(phviz.make_config("default", **PATHS[path], **settings))


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("direction", ["momentum", "random"])
def test_a_kick_adds_exactly_its_energy_and_the_ledger_books_it(path, direction):
    run = trainer(path)
    run.advance(10)
    before = run.last
    booked = run.kick(1.5, direction, seed=3)
    after = run.last
    assert booked == pytest.approx(1.5, rel=1e-6)
    assert after.kinetic - before.kinetic == pytest.approx(1.5, rel=1e-6)
    assert after.hamiltonian - before.hamiltonian == pytest.approx(1.5, rel=1e-6)
    assert after.potential == before.potential  # θ does not move
    assert after.supplied - before.supplied == pytest.approx(booked, abs=1e-12)
    assert after.ledger_residual == pytest.approx(before.ledger_residual, abs=1e-6)
    records = run.advance(20)
    assert all(r.supplied == after.supplied for r in records)
    assert abs(records[-1].ledger_residual) < 1e-3 * (before.hamiltonian + 1.5)


@pytest.mark.parametrize("inertia", ["number", "per layer", "per coordinate"])
def test_a_kick_is_exact_under_any_inertia(inertia):
    run = trainer("splitting", dtype="float64")
    layout = run.system.layout
    gains = {
        "number": 0.25,
        "per layer": {layout.names[0]: 4.0},
        "per coordinate": torch.linspace(0.5, 2.0, layout.size, dtype=torch.float64),
    }
    run.set_gains(inertia=gains[inertia])
    run.advance(5)
    kinetic = run.last.kinetic
    run.kick(0.3, "random", seed=1)
    assert run.last.kinetic - kinetic == pytest.approx(0.3, rel=1e-12)


def test_momentum_kick_pushes_along_p():
    run = trainer("odeint", dtype="float64")
    run.advance(5)
    p = run.system.split(run.xi)[1].clone()
    run.kick(2.0)
    kicked = run.system.split(run.xi)[1]
    cosine = torch.dot(p, kicked) / (p.norm() * kicked.norm())
    assert float(cosine) == pytest.approx(1.0, abs=1e-12)
    assert kicked.norm() > p.norm()


def test_a_kick_at_rest_falls_back_to_a_seeded_random_direction():
    def kicked(direction):
        run = trainer("odeint")  # p(0) = 0
        run.kick(1.0, direction, seed=7)
        return run.system.split(run.xi)[1]

    at_rest = kicked("momentum")
    assert float(at_rest.norm()) > 0
    np.testing.assert_array_equal(at_rest.numpy(), kicked("random").numpy())


def test_random_kicks_are_reproducible_with_a_seed():
    def momenta(seed):
        run = trainer("splitting")
        run.advance(3)
        run.kick(1.0, "random", seed=seed)
        return run.system.split(run.xi)[1].numpy()

    np.testing.assert_array_equal(momenta(5), momenta(5))
    assert not np.array_equal(momenta(5), momenta(6))


@pytest.mark.parametrize("energy", [0, -1.0, math.nan, math.inf, -math.inf, "1", None, True])
def test_a_bad_kick_energy_is_named(energy):
    run = trainer("odeint")
    xi = run.xi.clone()
    with pytest.raises(ValueError, match="Invalid kick energy"):
        run.kick(energy)
    assert torch.equal(run.xi, xi) and run.supplied == 0.0


def test_a_bad_kick_direction_is_named():
    with pytest.raises(ValueError, match="Invalid kick direction: 'sideways'"):
        trainer("odeint").kick(1.0, "sideways")


def test_a_reset_forgets_the_kick():
    run = trainer("odeint")
    run.advance(3)
    run.kick(1.0)
    run.reset()
    assert run.supplied == 0.0 and run.last.supplied == 0.0


def notice_with(session: LiveSession, text: str) -> bool:
    session.poll()
    return session.notice is not None and text in session.notice.text


def test_a_session_kicks_while_paused_and_says_so():
    session = LiveSession(phviz.make_config("default", horizon=0.0), max_rate=None)
    try:
        assert wait_for(lambda: session.poll() and session.ready)
        session.step(3)
        assert wait_for(lambda: session.poll() and session.history.last.interval == 3)
        before = session.history.last
        session.kick(1.0)
        assert wait_for(lambda: notice_with(session, "Kicked: +ΔE = 1 into the momenta"))
        after = session.history.last
        assert after.t == before.t and not session.playing
        assert after.hamiltonian - before.hamiltonian == pytest.approx(1.0, rel=1e-5)
        assert session.history.columns()["supplied"][-1] == pytest.approx(1.0, rel=1e-6)
        session.kick(-2.0)
        assert wait_for(lambda: notice_with(session, "Invalid kick energy: -2.0"))
        assert session.notice.kind == "danger"
        assert session.history.last.supplied == after.supplied
    finally:
        session.close()


def test_the_energy_plot_draws_the_supplied_energy_with_its_key():
    from phviz.views import figures
    from phviz.views.history import record_row

    run = trainer("odeint")
    assert np.isnan(record_row(run.last)["supplied"])  # nothing supplied: a gap on log axes
    run.kick(0.5)
    assert record_row(run.last)["supplied"] == pytest.approx(0.5, rel=1e-6)
    lines = {column: label for column, label, _colour, _dash in figures.ENERGY_LINES}
    assert "∫vᵀu" in lines["supplied"] and lines["supplied"] in figures.energy_key()


def test_any_real_number_is_a_kick_energy():
    run = trainer("odeint")
    assert run.kick(np.float32(0.5)) == pytest.approx(0.5, rel=1e-6)
    assert run.kick(2) == pytest.approx(2.0, rel=1e-6)
    assert run.supplied == pytest.approx(2.5, rel=1e-6)
