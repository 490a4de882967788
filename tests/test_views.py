"""The explorer's data plumbing, without a browser: records → columns, decimation,
settings → trainer, errors → banner."""

import math
import time

import numpy as np
import pytest
import torch
from waiting import wait_for

from phviz import Record, make_config
from phviz.scheduler import NOW
from phviz.views import Explorer
from phviz.views.history import History, record_row, theta_column
from phviz.views.live import LiveSession
from phviz.views.pictures import damping_regime


def record(i: int, *, switched=False, k=3, dim=5) -> Record:
    theta = np.arange(dim, dtype=np.float32) + i
    return Record(
        t=0.1 * i,
        interval=i,
        epoch=float(i),
        batch=0,
        switched=switched,
        train_loss=1.0 / (i + 1),
        hamiltonian=2.0 / (i + 1),
        kinetic=0.0 if i == 0 else 0.5,
        potential=1.0 / (i + 1),
        dissipated=0.1 * i,
        supplied=0.0,
        switch_jumps=0.0,
        ledger_residual=-1e-6 * i,
        momentum_norm=0.0,
        nfe=6 * i,
        wall=0.0,
        theta_sample=theta[:k],
        p_sample=-theta[:k],
        theta=theta,
    )


def test_rows_hold_the_record_numbers_and_gaps_on_the_log_axis():
    row = record_row(record(0, switched=True))
    assert row["t"] == 0.0 and row["hamiltonian"] == 2.0 and row["switch"] == 2.0
    assert math.isnan(row["kinetic"])  # zero cannot be drawn on a log axis
    assert math.isnan(row["dissipated"]) and math.isnan(row["residual"])
    row = record_row(record(4))
    assert row["residual"] == pytest.approx(4e-6)  # |ledger residual|
    assert math.isnan(row["switch"])


def test_new_rows_are_streamed_as_columns():
    history = History(dim=5, n_tracked=4, capacity=11)
    update = history.extend([record(i) for i in range(3)])
    assert not update.rebuilt and len(update) == 3
    np.testing.assert_allclose(update.rows["t"], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(update.rows[theta_column(1)], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(update.rows["p_2"], [-2.0, -3.0, -4.0])
    assert np.isnan(update.rows[theta_column(3)]).all()  # only 3 coordinates tracked
    update = history.extend([record(3)])
    np.testing.assert_allclose(update.rows["t"], [0.3])
    assert history.size == 4 and history.last.interval == 3


def test_decimation_keeps_memory_bounded_and_spacing_even():
    history = History(dim=5, n_tracked=3, capacity=11)
    rebuilt = 0
    for i in range(1000):
        rebuilt += history.extend([record(i)]).rebuilt
    assert history.size <= 11
    intervals = history.columns()["interval"]
    assert intervals[0] == 0  # t = 0 is always kept
    steps = np.diff(intervals)
    assert (steps == history.stride).all()  # evenly spaced at the current stride
    assert 999 - intervals[-1] < history.stride
    assert history.stride == 128 and rebuilt == 7  # 11 → 6 rows, seven halvings to cover 1000
    np.testing.assert_allclose(history.thetas[:, 0], intervals)  # θ rows follow their rows


def test_a_skipped_switch_still_marks_the_next_kept_row():
    history = History(dim=5, n_tracked=3, capacity=5)
    for i in range(5):
        history.extend([record(i)])
    history.extend([record(5, switched=True)])  # halved to stride 2: record 5 is skipped
    update = history.extend([record(6)])
    assert update.rows["switch"][0] == pytest.approx(2.0 / 7)


def test_capacity_must_be_odd():
    with pytest.raises(ValueError, match="capacity"):
        History(dim=3, n_tracked=2, capacity=10)


def ready(session: LiveSession) -> LiveSession:
    """The session once its first build has been polled (the build runs on the pool)."""
    assert wait_for(lambda: session.poll().reset or session.ready)
    return session


def built(session: LiveSession, before: int) -> bool:
    """Whether a trainer other than build number ``before`` has been polled (its notice
    comes in the same poll)."""
    session.poll()
    return session.run is not None and session.run.build != before


def damping(session: LiveSession) -> float:
    """The damping in the session's trainer, as its own slice reads it."""
    return session.ask(lambda trainer: float(trainer.system.damping))


@pytest.fixture
def session():
    s = LiveSession(make_config("default", horizon=0.0), max_rate=None)
    yield s
    s.close()


def test_steps_reach_the_history(session):
    first = wait_for(lambda: (tick := session.poll()).reset and tick)
    assert len(first.records) == 0  # the first poll after a build starts over
    session.step(3)
    records = []
    assert wait_for(lambda: records.extend(session.poll().records) or len(records) >= 3)
    assert [r.interval for r in records] == [1, 2, 3]
    np.testing.assert_allclose(session.history.columns()["t"], [0.0, 0.1, 0.2, 0.3], atol=1e-9)
    assert session.status()["t"] == pytest.approx(0.3)


def test_new_gains_go_in_before_the_pictures_they_ask_for(session):
    """A gain change makes the pictures due at once (the landscape must be redone); the
    next slice still integrates first, so the change is in use without waiting for the
    pictures. The slices are called here by hand, the pool no longer holding the job."""
    ready(session)
    session.scheduler.remove(session)
    session.play()
    session.apply(damping=0.7)
    assert session.due() == NOW  # a command waits
    session.work()  # the command: the trainer and the pictures are told
    seen = []
    session.with_trainer(lambda trainer: seen.append(float(trainer.system.damping)))
    session.work()
    assert seen[0] != 0.7  # taken at the next interval, not before
    assert session.due() <= time.monotonic()  # a picture waits
    session.work()
    assert session.poll().records  # it integrated first
    session.with_trainer(lambda trainer: seen.append(float(trainer.system.damping)))
    session.work()
    assert seen[1] == 0.7


def test_gains_apply_without_reset_and_structure_rebuilds(session):
    build = ready(session).run.build
    session.apply(damping=2.5)
    session.step(1)
    assert wait_for(lambda: session.poll() and session.status()["t"] > 0)
    assert session.run.build == build and damping(session) == 2.5
    session.apply(hidden="8")
    assert wait_for(lambda: built(session, build))
    assert session.run.dim == 2 * 8 + 8 + 8 * 2 + 2
    assert "hidden widths" in session.notice.text and "t = 0" in session.notice.text


def test_solver_settings_reach_the_running_trainer(session):
    ready(session)
    session.apply(step_size=0.05, horizon=7.0)
    session.step(1)  # taken at the next interval
    assert wait_for(lambda: session.ask(lambda trainer: trainer.config.step_size) == 0.05)
    assert session.ask(lambda trainer: trainer.config.horizon) == 7.0
    session.apply(rtol=-1.0)  # refused by the settings: the run keeps its own
    assert "rtol" in session.notice.text and session.notice.kind == "danger"


def test_after_a_new_sample_theta_and_p_name_the_same_coordinates(session):
    ready(session)
    session.step(2)
    assert wait_for(lambda: session.poll() and session.status()["t"] > 0.15)
    before = session.run.tracked
    session.set_tracked(7)
    session.step(1)
    assert wait_for(lambda: session.poll() and session.run.tracked != before)
    assert wait_for(lambda: session.poll() and session.history.last.interval == 3)
    last = session.history.last
    tracked = np.asarray(session.run.tracked)

    def momenta(trainer):
        return trainer.xi[trainer.system.dim :].cpu().numpy().copy()

    p = session.ask(momenta)
    np.testing.assert_allclose(last.theta_sample, last.theta[tracked], rtol=1e-6)
    np.testing.assert_allclose(last.p_sample, p[tracked], rtol=1e-5, atol=1e-7)
    columns = session.history.columns()  # the plots' θ and p columns follow the sample
    np.testing.assert_allclose(columns[theta_column(0)][-1], last.theta[tracked[0]], rtol=1e-6)


def notice_with(session: LiveSession, text: str) -> bool:
    session.poll()
    return session.notice is not None and text in session.notice.text


def test_bad_settings_keep_the_old_model_and_say_why(session):
    build = ready(session).run.build
    session.apply(hidden="0")
    assert wait_for(lambda: notice_with(session, "Invalid hidden width: 0"))
    assert session.run.build == build and session.notice.kind == "danger"
    session.apply(hidden="")
    assert wait_for(lambda: notice_with(session, "Invalid hidden widths"))
    assert session.run.build == build


def test_divergence_pauses_with_a_banner_and_keeps_a_finite_state():
    # A quadratic potential (linear model, squared error) stepped by explicit Euler far
    # beyond its stability limit grows geometrically until it overflows.
    session = ready(LiveSession(make_config("paper-blobs", horizon=0.0), max_rate=None))
    session.apply(potential_gain=1e4, damping=0.0)
    session.apply(solver="euler", step_size=0.1)
    session.play()
    assert wait_for(lambda: session.poll() and session.error is not None, timeout=60)
    assert not session.playing
    assert session.notice.kind == "danger" and "diverged" in session.notice.text.lower()
    assert session.ask(lambda trainer: bool(torch.isfinite(trainer.xi).all()))
    session.close()


def test_damping_regime_against_critical():
    assert damping_regime(0.4, 2.0) == "under-damped"
    assert damping_regime(2.1, 2.0) == "critically damped"
    assert damping_regime(5.0, 2.0) == "over-damped"
    assert damping_regime(0.0, 2.0) == "undamped"
    assert damping_regime(1.0, 0.0) == "over-damped"  # a flat mode cannot oscillate


def test_explorer_says_whether_the_damping_is_under_critical():
    explorer = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        shown = explorer.session
        assert wait_for(lambda: shown.shown is not None and shown.shown.stiffness)
        explorer.update_view()  # a page's first update: the numbers and curves
        explorer.update_view(force=True)  # the pictures and notes (no page acknowledges)
        estimate = shown.shown.stiffness
        note = explorer.controls.damping_note.object
        assert f"{estimate.critical:.3g}" in note
        expected = damping_regime(explorer.settings.damping, estimate.critical)
        assert expected in note
        # the same estimate against a much larger damping reads over-damped
        explorer.settings.damping = 10 * estimate.critical
        explorer.update_view(force=True)
        assert "over-damped" in explorer.controls.damping_note.object
    finally:
        explorer.close()


def test_a_solver_that_cannot_keep_its_tolerance_pauses_with_a_banner():
    session = ready(LiveSession(make_config("default", horizon=0.0), max_rate=None))
    try:
        session.apply(rtol=1e-9, atol=1e-9, max_steps=10, switching_interval=20.0)
        session.play()
        assert wait_for(lambda: session.poll() and session.error is not None, timeout=60)
        assert not session.playing
        assert session.notice.kind == "danger"
        assert "could not keep rtol=1e-09" in session.notice.text
        assert "Traceback" not in session.notice.text
        session.apply(max_steps=20_000)  # the page goes on: Run again works
        session.play()
        t = session.status()["t"]
        assert wait_for(lambda: session.poll() is not None and session.status()["t"] > t)
    finally:
        session.close()


def test_the_refresh_period_from_the_query_string():
    from phviz.views.clock import TICK_SECONDS, refresh_ms

    assert refresh_ms({}) == round(1000 * TICK_SECONDS)
    assert refresh_ms({"refresh": [b"250"]}) == 250
    assert refresh_ms({"refresh": [b"5"]}) == 40  # clamped to [40, 2000]
    assert refresh_ms({"refresh": [b"99999"]}) == 2000
    assert refresh_ms({"refresh": [b"fast"]}) == round(1000 * TICK_SECONDS)
    assert refresh_ms({"refresh": [b"-3"]}) == 40
    # missing or malformed: the default
    for args in ({"refresh": [b""]}, {"refresh": []}, {"refresh": ["250"]}, {"other": [b"9"]}):
        assert refresh_ms(args) == round(1000 * TICK_SECONDS)
    assert refresh_ms({"refresh": ["250".encode("utf-16")]}) == round(1000 * TICK_SECONDS)


@pytest.fixture
def explorer():
    e = Explorer(make_config("default", horizon=0.0), live=False)
    assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
    yield e
    e.close()


def shown(explorer, condition):
    explorer.update_view(force=True)
    return condition()


def test_a_preset_from_the_sidebar_rebuilds_the_run(explorer):
    explorer.controls.preset_widget.value = "paper-duffing"
    assert explorer.preset == "paper-duffing"
    assert explorer.settings.dataset == "duffing"
    assert wait_for(lambda: shown(explorer, lambda: explorer.task_kind == "field"), timeout=60)
    assert explorer.session.run.dataset.name == "duffing"
    assert "paper-duffing" in explorer.session.notice.text


def test_the_plane_follows_the_sidebar_and_bad_indices_are_named(explorer):
    controls = explorer.controls
    controls.plane_y_widget.value = 3
    controls.plane_widget.value = "coordinates"

    def on_new_plane():
        state = explorer.session.shown.landscape
        return state.plane is not None and state.plane.kind == "coordinates"

    assert wait_for(lambda: shown(explorer, on_new_plane), timeout=60)
    assert explorer.session.shown.landscape.plane.indices == (0, 3)
    controls.plane_y_widget.value = 0  # the same parameter twice
    assert "Invalid plane coordinates: (0, 0)" in explorer.session.notice.text


def test_a_new_sample_tracks_other_coordinates(explorer):
    before = explorer.session.run.tracked
    explorer.controls.sample_button.clicks += 1
    assert explorer.sample_seed == 1

    def retracked():  # the plots show the new coordinates' θ, rebuilt from whole θ
        tracked = explorer.session.run.tracked
        column = explorer.plots.series.data[theta_column(0)]
        stored = explorer.session.history.thetas[0, tracked[0]]
        return tracked != before and len(column) and column[0] == stored

    assert wait_for(lambda: shown(explorer, retracked))
    assert len(explorer.session.run.tracked) == len(before)


def test_energy_key_names_each_curve_in_its_own_colour():
    from bokeh.models import ColumnDataSource

    from phviz.views import figures

    history = History(dim=5, n_tracked=3)
    energy, _, _ = figures.timeline_figures(ColumnDataSource(history.empty_columns()), 3)
    # No Bokeh legend on a streamed plot (BokehJS rebuilds its DOM with every row):
    # the key is static HTML with the same colours as the lines.
    assert not energy.legend
    key = figures.energy_key()
    drawn = {r.glyph.y: r.glyph.line_color for r in energy.renderers if hasattr(r.glyph, "y")}
    for column, label, colour, _dash in figures.ENERGY_LINES:
        assert drawn[column] == colour
        assert label in key and colour in key


def test_the_sidebar_cannot_drift_from_the_config(explorer):
    """Each setting's widget shows its parameter: value, label, slider range, step and the
    menu's values all come from TrainingConfig, whose parameters refuse what is out of
    bounds (a typed value's refusal names the setting)."""
    import param

    from phviz.config import CHOICES

    settings = explorer.settings
    widgets = explorer.controls.widgets
    assert set(widgets) <= set(settings.param)
    for name, widget in widgets.items():
        p = settings.param[name]
        assert widget.value == getattr(settings, name), name
        assert widget.label == p.label, name
        if "fixed_start" in widget.param:  # the parameter itself refuses, by name
            assert (widget.fixed_start, widget.fixed_end) == (None, None), name
        if "start" in widget.param and "options" not in widget.param:
            assert (widget.start, widget.end) == p.get_soft_bounds(), name
        if "step" in widget.param and p.step is not None:
            assert widget.step == p.step, name
        if name in CHOICES:
            assert widget.options == CHOICES[name], name
        elif isinstance(p, param.Selector):
            assert list(widget.options.values()) == p.objects, name
    # and the other way: a setting changed in code shows in its widget
    settings.damping = 1.25
    assert widgets["damping"].value == 1.25


def test_step_and_reset_from_the_sidebar(explorer):
    buttons = explorer.buttons
    buttons.press("step")
    assert wait_for(lambda: explorer.session.poll() and explorer.session.status()["t"] > 0)
    buttons.press("reset")
    assert wait_for(lambda: explorer.session.poll().reset, timeout=60)
    assert explorer.session.status()["t"] == 0.0


# ------------------------------------------------------------------ presenter
def test_two_polls_merge_into_one_update():
    from phviz.views import presenter
    from phviz.views.live import Tick

    history = History(dim=5, n_tracked=3, capacity=11)
    one = Tick(history.extend([record(0), record(1)]), [record(0), record(1)], False, False)
    two = Tick(history.extend([record(2)]), [record(2)], False, True)
    both = presenter.merged(one, two)
    np.testing.assert_allclose(both.update.rows["t"], [0.0, 0.1, 0.2])
    assert len(both.records) == 3 and both.rebuilt and not both.reset
    reset = Tick(history.extend([record(3)]), [record(3)], True, False)
    assert presenter.merged(both, reset).reset  # a reset starts over, the rebuild kept
    assert presenter.merged(both, reset).rebuilt
    assert presenter.merged(None, one) is one


def test_the_status_line_and_the_run_button():
    from phviz.views import presenter

    status = dict(
        t=1.234,
        epoch=3.0,
        train_loss=0.012345,
        test_loss=math.nan,
        accuracy=0.875,
        hamiltonian=0.5,
        nfe=42,
        steps_per_second=math.nan,
        device="cpu",
    )
    line = presenter.status_line(status)
    assert "<b>t</b> 1.23" in line and "<b>train loss</b> 0.01235" in line
    assert "<b>test loss</b> –" in line and "<b>accuracy</b> 88%" in line
    assert "<b>–</b> steps/s" in line and line.startswith('<div class="phviz-status">')
    assert "accuracy" not in presenter.status_line({**status, "accuracy": math.nan})
    assert presenter.device_note(status) == "in use: **cpu**"


def test_the_time_axis_grows_by_a_quarter_and_shrinks_when_mostly_empty():
    from phviz.views import presenter

    assert presenter.time_range([], 1.0) is None
    assert presenter.time_range([0.0, 0.5], 1.0) is None  # t < 1 still fits the first axis
    assert presenter.time_range([0.0, 4.0], 1.0) == (0.0, 5.0)
    assert presenter.time_range([0.0, 4.0], 5.0) is None
    assert presenter.time_range([0.0, 2.0], 5.0) == (0.0, 2.5)  # more than half empty


def test_the_trail_streams_new_points_and_is_resent_whole_on_a_new_plane():
    from types import SimpleNamespace

    from phviz.views import presenter

    def state(n, version=1):
        t = 0.1 * np.arange(n)
        return SimpleNamespace(path_t=t, path_xy=np.c_[t, -t], version=version)

    assert presenter.trail(SimpleNamespace(path_t=[], path_xy=[], version=0), -1) is None
    first = presenter.trail(state(3), -1)
    assert not first.grown and len(first.columns["x"]) == 3 and first.sent == (1, 3, 0.2)
    assert first.head == {"x": [0.2], "y": [-0.2]} and first.t_range == (0.0, 0.2)
    assert presenter.trail(state(3), first.sent) is None  # nothing new
    more = presenter.trail(state(5), first.sent)
    assert more.grown and more.columns["t"] == pytest.approx([0.3, 0.4])
    replaced = presenter.trail(state(5, version=2), more.sent)  # a new plane
    assert not replaced.grown and len(replaced.columns["t"]) == 5


def test_the_landscape_picture_as_plain_data():
    from types import SimpleNamespace

    from phviz.views import presenter

    xs, ys = np.linspace(-1, 1, 5), np.linspace(0, 2, 4)
    z = 10.0 ** (xs[None, :] + ys[:, None])
    z[0, 0] = np.inf
    plane = SimpleNamespace(kind="pca", labels=("PC1 (80%)", "PC2 (15%)"))
    state = SimpleNamespace(xs=xs, ys=ys, Z=z, plane=plane, explained=0.95)
    surface = presenter.surface(state)
    assert surface.x_range == (-1.0, 1.0) and surface.y_range == (0.0, 2.0)
    assert surface.low == pytest.approx(-0.5) and surface.high == pytest.approx(3.0)  # inf left out
    assert surface.title == "Landscape · PCA · 95% of path"
    assert surface.labels == ("PC1 (80%)", "PC2 (15%)")
    assert surface.image["image"][0].dtype == np.float32 and len(surface.lines["x"])


def test_a_confusion_matrix_as_cells():
    from types import SimpleNamespace

    from phviz.views import presenter

    view = presenter.task(SimpleNamespace(kind="confusion", values=np.array([[3, 1], [0, 4]])))
    cells = view.sources["cells"]
    assert cells["predicted"] == ["0", "1", "0", "1"] and cells["true"] == ["0", "0", "1", "1"]
    assert cells["label"] == ["3", "1", "0", "4"] and view.high == 4.0
    assert view.x_range is None


def test_spans_and_levels_never_collapse():
    from phviz.views import presenter

    lo, hi = presenter.span(np.array([2.0, 2.0]))
    assert lo < 2.0 < hi
    assert presenter.span(np.array([0.0, 1.0])) == pytest.approx((-0.2, 1.2))
    np.testing.assert_allclose(presenter.levels(np.array([np.nan, np.inf]), 3), [0, 0.5, 1])
    assert presenter.levels(np.array([1.0, 1.0]), 2)[1] > 1.0


def test_the_plots_follow_the_first_update():
    e = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        assert not e.plots.shown  # placeholders: the page is usable before its figures
        assert wait_for(lambda: e.update_view() or e.clock.sent >= 1)
        assert not e.plots.shown  # the first update: numbers and curves only
        assert wait_for(lambda: e.update_view() or e.plots.shown)  # the next, news or not
        rows = [objects for _, objects in e.plots.rows]
        assert e.plots.panes["task"] in rows[0]  # the task picture with its info icon
        assert e.plots.task_pane in e.plots.panes["task"]
    finally:
        e.close()


def test_a_pause_sends_its_last_update_first_and_the_label_run_after_it():
    """Once the button reads Run, nothing on the page changes: the pause's last update,
    status line included (it travels with the clock's count), goes out before the label
    turns, and nothing goes out after."""
    e = Explorer(make_config("default", horizon=1e6), live=False)
    labels = []
    tick = e.clock.tick

    def recording_tick(html=None):
        labels.append(e.buttons.label)
        tick(html)

    e.clock.tick = recording_tick
    try:
        assert wait_for(lambda: e.update_view() or e.clock.sent >= 2)
        e.buttons.press("run")
        assert e.buttons.label == "Pause"
        assert wait_for(lambda: e.update_view(force=True) or e.session.status()["t"] > 0.5)
        e.buttons.press("pause")
        assert wait_for(lambda: e.update_view() or e.buttons.label == "Run")
        assert labels[-1] == "Pause"  # the last update went out before Run showed
        sent = e.clock.sent
        for _ in range(10):
            e.update_view()
        assert e.clock.sent == sent
    finally:
        e.close()


def test_the_data_plot_hovers_over_the_data_points_only():
    from bokeh.models import ColumnDataSource, HoverTool

    from phviz.views import figures

    points = ColumnDataSource(
        figures.point_data(np.zeros((2, 2)), np.zeros(2), np.zeros((0, 2)), np.zeros(0))
    )
    fig = figures.regions_figure(
        ColumnDataSource(figures.image_data(np.zeros(2), np.zeros(2), np.zeros((1, 1)))), points, 2
    )
    (hover,) = fig.select(type=HoverTool)
    assert [r.data_source for r in hover.renderers] == [points]  # no "???" over the regions


def test_the_pictures_due_time_is_kept_but_follows_every_change():
    from phviz import Trainer
    from phviz.views.picturejob import Pictures

    trainer = Trainer(make_config("default", horizon=0.0))
    pictures = Pictures(trainer)
    for _ in range(10):  # paused: every picture is made once, then nothing is due
        if pictures.due(False) == math.inf:
            break
        pictures.turn()
    assert pictures.due(False) == math.inf and pictures.phase is not None
    pictures.request_phase(pictures.phase.index + 1, (-1.0, 1.0), (-1.0, 1.0))
    assert pictures.due(False) == -math.inf  # another coordinate: its portrait, now
    pictures.turn()
    assert pictures.due(False) == math.inf
    pictures.track(trainer.advance(1))
    assert pictures.due(False) < math.inf  # the pictures are behind the run
    pictures.settle()
    assert pictures.due(False) == math.inf


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_frame_clock_waits_longer_for_each_update_a_page_has_not_drawn():
    from phviz.views.clock import FrameClock

    now = Clock()
    clock = FrameClock(patience=2.0, now=now)
    assert clock.ready()
    clock.tick("<b>t 1</b>")
    assert not clock.ready()  # one update in flight: wait for the page
    now.t += 2.5  # the page kept us waiting past patience: go on
    assert clock.ready()
    clock.tick()
    now.t += 2.5  # two in flight: 2.5 s is not enough any more
    assert not clock.ready()
    now.t += 2.0
    assert clock.ready()
    clock.answer(2)  # the page caught up, 4.5 s after the last update
    assert clock.drawn == 2 and not clock.ready()  # and rests before the next


def test_the_frame_clock_lets_a_page_that_draws_slowly_rest_before_the_next_update():
    from phviz.views.clock import FrameClock

    now = Clock()
    clock = FrameClock(quick=0.1, rest=4.0, patience=60.0, now=now)
    clock.tick()
    clock.answer(1)  # drawn at once: the next may go
    assert clock.drawing < 0.1 and clock.ready()
    clock.tick()
    now.t += 5.0  # this one took the page five seconds to draw
    clock.answer(2)
    assert clock.drawing >= 5.0
    assert not clock.ready()  # it rests four times the time beyond quick first
    now.t += 3.9 * (clock.drawing - 0.1)
    assert not clock.ready()
    now.t += 0.1 * (clock.drawing - 0.1) + 0.01
    assert clock.ready()
    clock.answer(2)  # a repeated answer changes nothing
    assert clock.ready()
    clock.patience = 2.0  # an answer held back for minutes rests no longer than patience
    clock.tick()
    now.t += 300.0
    clock.answer(3)
    assert not clock.ready()
    now.t += 2.01
    assert clock.ready()


def test_a_collapsed_section_is_built_on_its_first_expand_with_the_links_values():
    from bokeh.document import Document

    from phviz.views.layout import page
    from phviz.views.linkview import read_link
    from phviz.views.sidebar import SOLVER_DETAILS

    link = {"max_steps": [b"4321"], "damping": [b"0.3"], "hide": [b"atol"]}
    e = Explorer(live=False, link=read_link(link))
    try:
        template = page([e], e.sidebar())
        doc = Document()
        template.server_doc(doc)
        sections = [
            *(
                w
                for ws in e.controls.sections.values()
                for w in ws
                if "phviz-section" in w.css_classes
            ),
            *e.exports.widgets(),
        ]
        titles = [s.title for s in sections]
        assert "Solver details" in titles and "Kick" in titles and "Your data" in titles
        assert "Export" in titles and any("Per-layer" in t for t in titles)
        assert all(s.collapsed and not s.objects for s in sections)
        model_values = lambda: {getattr(m, "value", None) for m in doc.models}  # noqa: E731
        assert 4321 not in model_values()  # the widget of max_steps is not on the page yet

        details = sections[titles.index("Solver details")]
        details.collapsed = False  # as the page's click on the header sets it
        steps, atol = e.controls.widgets["max_steps"], e.controls.widgets["atol"]
        assert details.objects == [e.controls.widgets[name] for name in SOLVER_DETAILS]
        assert steps.value == 4321 and e.settings.max_steps == 4321  # the link's value
        assert atol.visible is False  # hidden by the link, though built later
        assert 4321 in model_values()  # and now on the page
        built = list(details.objects)
        details.collapsed = True
        details.collapsed = False
        assert details.objects == built  # built once

        steps.value = 500  # the widget built late still sets the run's setting
        assert e.settings.max_steps == 500
        kick = sections[titles.index("Kick")]
        kick.collapsed = False
        assert e.controls.kick.button in kick.objects[0]
    finally:
        e.close()


def test_a_tab_among_many_ticks_less_often_but_never_above_its_floor():
    from phviz.views.clock import tick_period

    assert tick_period(80, 1, 80) == 80  # alone: 12.5 ticks a second, as ever
    assert tick_period(80, 20, 80) == 400  # twenty tabs share 25 updates/s: two ticks each
    assert tick_period(400, 21, 80) == 400  # a small change does not restart the callback
    assert tick_period(400, 1, 80) == 80
    assert tick_period(80, 1, 250) == 250  # the page asked for ?refresh=250


def test_a_press_does_what_its_button_showed_whatever_the_run_did_meanwhile():
    """Pause pauses and Run runs: a press carries what the page showed, so a run that
    stopped on its own (its horizon) is not started again by a late Pause."""
    e = Explorer(make_config("default", horizon=2.0), live=False)  # 50 intervals at 40/s
    try:
        assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
        e.buttons.press("run")
        assert e.buttons.label == "Pause"
        assert wait_for(lambda: e.update_view() or not e.session.playing)  # the horizon
        e.buttons.press("pause")  # the page still read Pause when it was pressed
        assert not e.session.playing and e.buttons.label == "Run"
        e.buttons.press("pause")
        assert not e.session.playing
        e.buttons.press("run")
        e.buttons.press("run")  # twice: still running
        assert e.session.playing and e.buttons.label == "Pause"
        with pytest.raises(ValueError, match="Invalid action: 'jump'"):
            e.buttons.press("jump")
    finally:
        e.close()
