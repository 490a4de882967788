"""The explorer's links, lessons, presenter view, export and first view, without a
browser (tests/ui/test_links_browser.py drives them in one)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import panel as pn
import pytest
from waiting import wait_for

from phviz.config import make_config
from phviz.lessons import LESSONS
from phviz.links import parse_link
from phviz.views import Explorer
from phviz.views.firstview import readable, widened
from phviz.views.lessonview import NONE
from phviz.views.linkview import problems_text, read_link
from phviz.views.runlog import RunLog


def opened(link) -> Explorer:
    """An explorer opened from ``link`` (query arguments as the server gives them)."""
    e = Explorer(live=False, link=read_link({k: [v.encode()] for k, v in link.items()}))
    e.sidebar()
    assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
    return e


# ------------------------------------------------------------------ the run's records
def test_the_run_log_halves_evenly_and_keeps_the_first_and_last():
    log = RunLog(5)
    log.extend(SimpleNamespace(interval=i) for i in range(100))
    intervals = [r.interval for r in log.records]
    assert intervals[0] == 0 and intervals[-1] == 99
    assert len(log) <= 6
    steps = np.diff(intervals[:-1])
    assert len(set(steps)) == 1  # evenly spaced
    log.clear()
    assert log.records == []
    with pytest.raises(ValueError, match="capacity"):
        RunLog(2)


def test_the_session_keeps_the_run_for_export_and_forgets_it_on_reset():
    e = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
        e.session.step(5)
        assert wait_for(lambda: e.update_view(force=True) or len(e.session.run_log) == 6)
        rows = list(csv.DictReader(e.exports.records_csv()))
        assert [float(r["t"]) for r in rows] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
        tracked = e.session.run.tracked
        assert f"theta_{tracked[0]}" in rows[0]
        settings = json.load(e.exports.settings_json())
        assert settings == json.loads(json.dumps(e.settings.values()))
        e.buttons.press("reset")
        assert wait_for(lambda: e.update_view(force=True) or len(e.session.run_log) == 1)
    finally:
        e.close()


def test_the_animation_is_drawn_on_the_pool_with_progress():
    e = Explorer(make_config("default", n_samples=80, hidden="4", horizon=0.0), live=False)
    try:
        assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
        e.exports.make_gif()  # nothing run yet: said, not drawn
        assert "press Run" in e.session.notice.text
        e.session.step(4)
        assert wait_for(lambda: e.update_view(force=True) or len(e.session.run_log) == 5)
        seen = []

        def finished():
            e.update_view(force=True)
            seen.append(e.exports.progress.value)
            return e.exports.gif.visible

        e.exports.make_gif()
        assert e.exports.progress.visible and e.exports.gif_button.disabled
        assert wait_for(finished, timeout=120)
        assert not e.exports.progress.visible and not e.exports.gif_button.disabled
        with open(e.exports.gif.file, "rb") as f:
            assert f.read(6) == b"GIF89a"
    finally:
        e.close()


# ------------------------------------------------------------------ links
def test_a_link_opens_its_set_up_and_names_what_it_could_not_use():
    e = opened(
        {"preset": "paper-blobs", "damping": "0.7", "inertia": "heavy", "hide": "solver,rtol,x"}
    )
    try:
        assert e.preset == "paper-blobs" and e.settings.dataset == "paper-blobs"
        assert e.settings.damping == 0.7 and e.controls.widgets["damping"].value == 0.7
        # built once, with the link's values
        assert e.session.ask(lambda trainer: trainer.config.damping) == 0.7
        assert not any(w.visible for w in e.controls.sections["solver"])
        assert e.controls.widgets["rtol"].visible is False
        assert all(w.visible for w in e.controls.sections["gains"])
        text = e.banner.object
        assert e.banner.visible and "'heavy'" in text and "'x'" in text and "inertia" in text
        query = e.links.query()
        assert query == "preset=paper-blobs&damping=0.7&hide=solver,rtol"
        again = parse_link(dict(pair.split("=") for pair in query.split("&")))
        assert again.problems == [] and again.settings == {"damping": 0.7}
    finally:
        e.close()


def test_a_lesson_link_shows_its_text_and_run_starts():
    e = opened({"lesson": "overdamped", "run": "1", "plane": "random"})
    try:
        assert e.lessons.lesson == "overdamped" and e.lessons.pane.visible
        assert LESSONS["overdamped"].title in e.lessons.pane.object
        assert e.settings.damping == 10.0 and e.plane == "random"
        assert e.session.playing
        assert e.links.query() == "lesson=overdamped&plane=random"
    finally:
        e.close()


def test_a_broken_query_never_breaks_the_page():
    assert read_link({"damping": object()}).problems  # unreadable: one problem, no error
    assert problems_text(parse_link({})) is None
    e = opened({"dataset": "nope", "present": "maybe"})
    try:
        assert e.settings.dataset == "moons"
        assert "dataset" in e.banner.object and "present" in e.banner.object
    finally:
        e.close()


def test_picking_a_lesson_loads_it_and_a_preset_leaves_it():
    e = opened({})
    try:
        assert e.lessons.picker.value == NONE and not e.lessons.pane.visible
        assert list(e.lessons.picker.options)[0] == NONE
        e.lessons.picker.value = "weight-decay"
        assert e.preset == "paper-blobs" and e.settings.weight_decay == 0.5
        assert e.lessons.pane.visible
        assert e.links.query() == "lesson=weight-decay"
        e.controls.preset_widget.value = "default"
        assert e.lessons.lesson is None and not e.lessons.pane.visible
        assert e.settings.weight_decay == make_config("default").weight_decay
    finally:
        e.close()


def test_the_presenter_view_has_no_sidebar_and_large_text():
    e = opened({"present": "1"})
    try:
        assert e.sidebar() is None
        rows = [o for o in e.layout[0].objects if isinstance(o, pn.Row)]
        assert any(e.buttons in row.objects for row in rows)  # over the plots
        for fig in (*e.plots.timeline, e.plots.phase_fig, e.plots.landscape_fig):
            assert int(fig.xaxis[0].major_label_text_font_size[:-2]) >= 19
            assert int(fig.title.text_font_size[:-2]) >= 19
        assert "present=1" in e.links.query()
    finally:
        e.close()


# ------------------------------------------------------------------ first view
def test_single_points_get_a_readable_span():
    assert np.ptp(readable([0.19])) == pytest.approx(0.05)
    assert np.ptp(readable([30.0])) == pytest.approx(3.0)
    assert np.ptp(readable([0.0, 2.0])) == 2.0  # wide enough already
    log = readable([0.655, 0.6551], log=True)
    assert log.max() / log.min() == pytest.approx(10.0, rel=1e-3)
    assert widened(0.1, 0.1) == pytest.approx((0.075, 0.125))


def test_the_start_of_each_curve_is_marked():
    e = opened({})
    try:
        energy, thetas = e.plots.start["energy"].data, e.plots.start["theta"].data
        assert set(energy["t"]) == {0.0}  # H and potential (kinetic when p(0) ≠ 0)
        assert energy["y"][0] == pytest.approx(e.session.history.last.hamiltonian)
        assert len(thetas["y"]) == e.session.history.n_tracked
        assert thetas["y"][0] == pytest.approx(float(e.plots.series.data["theta_0"][0]))
        phase = e.plots.phase_fig
        assert phase.x_range.end - phase.x_range.start >= 0.05
        assert phase.y_range.end - phase.y_range.start >= 0.05
    finally:
        e.close()


def test_the_presenter_view_folds_the_lessons_text_under_its_title():
    lesson = LESSONS["underdamped"]
    e = opened({"present": "1", "lesson": "underdamped"})
    try:
        text = e.lessons.pane.object
        assert text.startswith(f"<details><summary><b>{lesson.title}</b></summary>")
        assert lesson.text in text
    finally:
        e.close()
