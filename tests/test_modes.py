"""The Modes view and the autopilot without a browser: regimes and colours under the
gains of the moment, the critical line, the autopilot's damping, the trace along the
Ritz vectors, and the spectrum made in the session's slices."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from waiting import wait_for

from phviz import make_config
from phviz.spectrum import Spectrum
from phviz.views import Explorer
from phviz.views import modesjob as modesjob_module
from phviz.views.autopilot import critical_choice, layer_choices, rounded
from phviz.views.live import LiveSession
from phviz.views.modesjob import ModeTrace
from phviz.views.modespresent import (
    REGIME_COLOURS,
    Gains,
    critical_curvature,
    density,
    mapped,
    motion_update,
    near_critical,
    regimes,
)
from phviz.views.spectra import ModesPicture, SpectrumSizes


def gains(damping=1.0, inertia=1.0, a=1.0, c=0.0) -> Gains:
    return Gains(damping, inertia, a, c)


def spectrum_of(values, vector_values=None) -> Spectrum:
    values = np.sort(np.asarray(values, dtype=float))
    return Spectrum(
        eigenvalues=values,
        weights=np.full(len(values), 1.0 / len(values)),
        extremes=(float(values[0]), float(values[-1])),
        vector_values=None if vector_values is None else np.asarray(vector_values, float),
    )


def test_the_critical_line_is_b_squared_over_4m_and_the_band_follows_zeta():
    g = gains(damping=2.0, inertia=4.0)
    assert critical_curvature(g) == pytest.approx(0.25)
    low, high = near_critical(g)
    assert low == pytest.approx(0.25 / 1.1**2) and high == pytest.approx(0.25 / 0.9**2)
    # just inside and just outside each edge of the band
    labels = regimes([high * 1.01, high * 0.99, low * 1.01, low * 0.99], g)
    assert list(labels) == ["oscillating", "near critical", "near critical", "creeping"]


def test_each_curvature_takes_its_regime_and_colour_under_the_current_gains():
    g = gains(damping=2.0, inertia=1.0)  # μ_c = 1
    labels = regimes([4.0, 1.0, 0.25, 0.0, -3.0], g)
    assert list(labels) == ["oscillating", "near critical", "creeping", "saddle", "saddle"]
    drawn = density(spectrum_of([-3.0, 0.25, 1.0, 4.0]), g, dim=4)
    assert set(drawn.bars["regime"]) == {"oscillating", "near critical", "creeping"}
    for regime, colour in zip(drawn.bars["regime"], drawn.bars["color"], strict=True):
        assert colour == REGIME_COLOURS[regime]
    assert drawn.saddles["regime"] == ["saddle"] and drawn.saddle_share == pytest.approx(0.25)
    assert drawn.critical == pytest.approx(1.0)
    assert drawn.x_range[0] < 0.25 and drawn.x_range[1] > 4.0


def test_a_gain_change_recolours_the_same_spectrum_of_l():
    spectrum = spectrum_of([0.01, 0.1, 1.0, 10.0])
    little = density(spectrum, gains(damping=0.01), dim=4)
    much = density(spectrum, gains(damping=100.0), dim=4)
    assert set(little.bars["regime"]) == {"oscillating"}
    assert set(much.bars["regime"]) == {"creeping"}
    np.testing.assert_allclose(little.bars["left"], much.bars["left"])  # same bars
    # a and c move the curvatures themselves: μ = a·λ + c
    shifted = mapped(spectrum, gains(a=2.0, c=0.5))
    np.testing.assert_allclose(shifted.eigenvalues, 2.0 * spectrum.eigenvalues + 0.5)
    assert shifted.extremes == pytest.approx((0.52, 20.5))


@pytest.mark.parametrize("which", ["stiffest", "median", "flattest"])
def test_the_autopilot_sets_spectrum_critical_damping_mapped_with_the_gains(which):
    spectrum = spectrum_of([-0.4, 0.02, 0.3, 0.5, 1.7])
    g = gains(damping=0.4, inertia=2.5, a=1.5, c=0.01)
    choice = critical_choice(spectrum, which, g)
    expected = mapped(spectrum, g).critical_damping(which, 2.5)
    assert choice.exact == expected
    assert choice.damping == rounded(expected) and choice.ok
    if which == "stiffest":
        assert expected == pytest.approx(2 * math.sqrt((1.5 * 1.7 + 0.01) * 2.5))
    # a layer's own inertia takes the place of the run's
    per_layer = layer_choices({"0": spectrum}, which, g, {"0": 0.5})
    assert per_layer["0"].exact == mapped(spectrum, g).critical_damping(which, 0.5)


def test_the_autopilot_sets_nothing_when_every_direction_is_a_saddle():
    choice = critical_choice(spectrum_of([-2.0, -1.0]), "stiffest", gains())
    assert not choice.ok and math.isnan(choice.damping)


def picture(dim=5, t=1.0, version=1) -> ModesPicture:
    vectors = np.eye(dim, dtype=np.float32)[[0, 1, 3, 4]]
    theta = np.arange(dim, dtype=np.float32)
    return ModesPicture(
        version=version,
        t=t,
        spectrum=spectrum_of([-1.0, 0.5, 2.0, 3.0], vector_values=[-1.0, 0.5, 2.0, 3.0]),
        vectors=vectors,
        origin=vectors @ theta,
        dim=dim,
        points=10,
        of_points=10,
        sizes=SpectrumSizes(10, 1, 8),
    )


class Point:
    def __init__(self, t, theta):
        self.t, self.theta = t, theta


def test_the_trace_projects_each_record_from_the_spectrum_on_and_stays_bounded():
    trace = ModeTrace(capacity=11)
    shown = picture()
    trace.restart(shown)
    theta = np.arange(5, dtype=np.float32)
    trace.extend([Point(0.5, theta + 9)])  # before the spectrum: not projected
    step = np.array([1.0, 2.0, 0.0, 3.0, 4.0], np.float32)
    trace.extend([Point(1.0 + 0.1 * k, theta + k * step) for k in range(1, 4)])
    first = trace.shown
    assert first.size == 4 and first.t[0] == 1.0
    np.testing.assert_allclose(first.q[0], 0.0)
    np.testing.assert_allclose(first.q[3], 3 * np.array([1.0, 2.0, 3.0, 4.0]))
    # a page holding the first rows is sent only the new ones
    columns, grown, sent = motion_update(first, None)
    assert not grown and sent == (1, first.generation, 4)
    trace.extend([Point(2.0, theta)])
    columns, grown, _ = motion_update(trace.shown, sent)
    assert grown and list(columns["t"]) == [2.0]
    np.testing.assert_allclose(columns["s0"], 0.0)  # back at θ(t_s)
    trace.extend([Point(3.0 + 0.01 * k, theta) for k in range(100)])
    assert trace.shown.size <= 11 and trace.shown.t[0] == 1.0
    assert trace.shown.t[-1] > 3.5  # the whole time since t_s stays covered


def test_the_spectrum_is_made_in_the_sessions_slices_and_gains_only_recolour(monkeypatch):
    threads = []
    made = modesjob_module.modes_picture

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return made(*args, **kwargs)

    monkeypatch.setattr(modesjob_module, "modes_picture", spy)
    session = LiveSession(make_config("default", horizon=0.0), max_rate=None)
    try:
        assert wait_for(lambda: session.shown is not None and session.shown.modes is not None)
        assert threads and all(name.startswith("phviz-worker") for name in threads)
        shown = session.shown
        assert len(shown.modes.vectors) == len(shown.modes.spectrum.vector_values)
        assert shown.stiffness.curvature == shown.modes.spectrum.extremes[1]
        version, count = shown.modes.version, len(threads)
        session.apply(inertia=4.0)  # paused: new gains, the same θ
        session.step(1)  # ... in force from this interval on
        assert wait_for(
            lambda: (
                session.shown.stiffness.critical
                == pytest.approx(2 * math.sqrt(shown.modes.spectrum.extremes[1] * 4.0))
            )
        )
        assert wait_for(lambda: session.shown.modes.version != version)  # θ moved: anew
        assert len(threads) == count + 1
    finally:
        session.close()


def test_the_modes_tab_draws_recolours_and_its_autopilot_sets_the_sidebars_damping():
    explorer = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        session = explorer.session
        assert wait_for(lambda: session.shown is not None and session.shown.modes is not None)
        explorer.update_view()  # the page's first update: numbers and curves
        explorer.layout.active = 2  # the Modes tab
        view = explorer.modes
        assert len(view.bars.data["left"]) > 0
        modes = session.shown.modes
        stiffest = modes.spectrum.extremes[1]
        explorer.settings.damping = rounded(0.5 * 2 * math.sqrt(stiffest))
        explorer.update_view(force=True)
        assert view.bars.data["regime"][-1] == "oscillating"
        explorer.settings.damping = rounded(2.0 * 2 * math.sqrt(stiffest))
        explorer.update_view(force=True)
        assert set(view.bars.data["regime"]) == {"creeping"}
        view.autopilot.press("stiffest")
        expected = mapped(modes.spectrum, Gains.of(explorer.settings)).critical_damping(
            "stiffest", explorer.settings.inertia
        )
        assert explorer.settings.damping == rounded(expected)
        assert f"damping {rounded(expected):g}" in view.autopilot.note.object
        assert explorer.session.config.damping == rounded(expected)  # the run takes it
    finally:
        explorer.close()


def test_the_layer_autopilot_sets_each_layers_damping_critical_for_its_block():
    explorer = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        table = explorer.layer_gains
        assert wait_for(lambda: (explorer.update_view(), table.layers)[1])
        table.autopilot.press("stiffest")
        assert wait_for(lambda: (explorer.update_view(), table.overrides["damping"])[1], timeout=90)
        note = table.autopilot.note.object
        assert "critical for the stiffest mode of its own block" in note
        for layer, value in table.overrides["damping"].items():
            assert f"{layer}: <b>{value:g}</b>" in note
            assert table.inputs["damping", layer].value == value
    finally:
        explorer.close()


def test_the_modes_lesson_says_what_the_spectrum_of_its_set_up_shows():
    from phviz.lessons import LESSONS
    from phviz.training import Trainer
    from phviz.views.spectra import modes_picture

    lesson = LESSONS["modes"]
    trainer = Trainer(lesson.config())
    g = Gains.of(lesson.config())
    assert critical_curvature(g) == pytest.approx(0.04)
    start = modes_picture(trainer, trainer.last.theta, 0.0, 1, memory_bytes=2**28).spectrum
    assert 1.7 < start.extremes[1] < 1.9  # "μ ≈ 1.8"
    labels = regimes(mapped(start, g).eigenvalues, g)
    assert labels[-1] == "oscillating"
    creeping = start.weights[labels == "creeping"].sum()
    saddles = start.weights[labels == "saddle"].sum()
    assert 0.55 < creeping < 0.75 and 0.2 < saddles < 0.3  # two thirds; a quarter
    assert rounded(critical_choice(start, "stiffest", g).exact) == pytest.approx(2.7, abs=0.05)
    for which in ("median", "flattest"):
        assert critical_choice(start, which, g).damping < 0.1
    trainer.advance(round(20.0 / trainer.config.switching_interval))
    later = modes_picture(trainer, trainer.last.theta, trainer.t, 2, memory_bytes=2**28)
    assert trainer.t == pytest.approx(20.0) and 3.1 < later.spectrum.extremes[1] < 3.5
