"""Lessons: each builds its set-up, and the claims its text makes hold."""

import numpy as np
import pytest

import phviz
from phviz.curvature import curvature_extremes
from phviz.dynamics import critical_damping
from phviz.lessons import LESSONS, lesson


def advance(config, n):
    trainer = phviz.Trainer(config)
    return trainer, list(trainer.advance(n))


def maxima(values) -> int:
    v = np.asarray(values)
    return int(((v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])).sum())


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_lesson_builds_and_says_what_to_watch_and_try(name):
    item = LESSONS[name]
    config = item.config()
    for key, value in item.settings.items():
        assert getattr(config, key) == value
    assert "**Watch**" in item.text or "**Try**" in item.text
    assert item.title and item.plane in ("pca", "random", "coordinates")


def test_an_unknown_lesson_names_the_lessons():
    with pytest.raises(ValueError, match="Unknown lesson: 'nope'.*underdamped"):
        lesson("nope")


def test_damping_lessons_ring_settle_and_creep_as_they_say():
    _, under = advance(LESSONS["underdamped"].config(), 150)
    _, over = advance(LESSONS["overdamped"].config(), 150)
    kinetic_under = [r.kinetic for r in under]
    kinetic_over = [r.kinetic for r in over]
    assert maxima(kinetic_under) >= 2  # energy sloshes back and forth
    assert max(kinetic_over) < 0.1 * max(kinetic_under)  # the momenta stay small
    assert over[-1].train_loss > under[-1].train_loss  # and the loss falls more slowly


def test_the_critical_lesson_is_near_critical_for_the_stiffest_direction():
    config = LESSONS["critical"].config()
    trainer = phviz.Trainer(config)
    system = trainer.system
    _, curvature = curvature_extremes(system.loss, trainer.xi[: system.layout.size])
    critical = critical_damping(curvature, inertia=config.inertia)
    assert 0.7 * critical <= config.damping <= 1.5 * critical


def test_scaling_inertia_gain_and_damping_together_keeps_the_path():
    _, base = advance(phviz.make_config("default", rtol=1e-7, atol=1e-9), 40)
    config = LESSONS["inertia-vs-gain"].config()
    config.rtol, config.atol = 1e-7, 1e-9
    _, scaled = advance(config, 40)
    theta = np.stack([r.theta for r in base])
    np.testing.assert_allclose(np.stack([r.theta for r in scaled]), theta, atol=1e-3)
    assert scaled[-1].hamiltonian == pytest.approx(2 * base[-1].hamiltonian, rel=1e-2)


def test_minibatches_make_h_jump_and_the_ledger_books_it():
    _, records = advance(LESSONS["minibatches"].config(), 30)
    assert abs(records[-1].switch_jumps) > 1e-3
    assert abs(records[-1].ledger_residual) < 1e-3 * records[0].hamiltonian


def test_weight_decay_pulls_the_weights_towards_zero():
    _, decayed = advance(LESSONS["weight-decay"].config(), 200)
    _, plain = advance(phviz.make_config("paper-blobs"), 200)
    assert np.linalg.norm(decayed[-1].theta) < 0.5 * np.linalg.norm(plain[-1].theta)


def test_a_kick_gets_the_kick_lesson_out_of_its_poor_minimum():
    """The text's numbers: settled at loss 0.274 by t = 150; ΔE = 10 along p reaches 0.157."""
    trainer = phviz.Trainer(LESSONS["kick"].config())
    trainer.run(100.0, record_every=1000)
    earlier = trainer.last.train_loss
    trainer.run(record_every=1000)  # to the horizon, t = 150
    settled = trainer.last
    assert settled.t == pytest.approx(150.0)
    assert settled.train_loss == pytest.approx(0.274, abs=5e-4)
    assert earlier - settled.train_loss == pytest.approx(0.002, abs=5e-4)
    assert settled.momentum_norm == pytest.approx(0.005, abs=1e-3)
    assert settled.train_accuracy == pytest.approx(0.89, abs=0.005)
    assert trainer.kick(10.0, "momentum") == pytest.approx(10.0, rel=1e-5)
    trainer.run(350.0, record_every=1000)
    kicked = trainer.last
    assert kicked.train_loss == pytest.approx(0.157, abs=5e-4)
    assert kicked.train_accuracy == pytest.approx(0.94, abs=0.005)
    assert kicked.supplied == pytest.approx(10.0, rel=1e-5)
