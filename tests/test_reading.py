"""Reading the explorer without a browser: the landscape's gap curve along the path,
the help behind every plot and every term of the status line, the presenter view's
first row, the gain map's key outside its cells, and a sidebar that shows the
settings that run when those asked for are refused."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import panel as pn
import pytest
from waiting import wait_for

from phviz import make_config
from phviz.landscape import LandscapeWindow
from phviz.links import parse_link
from phviz.training import Trainer
from phviz.views import Explorer, help, presenter
from phviz.views.linkview import running_changes, settings_for
from phviz.views.live import REBUILD
from phviz.views.picturejob import Pictures
from phviz.views.pictures import ProfilePicture
from phviz.views.presentview import focus
from phviz.views.refusals import tell
from phviz.views.slices import Kept

STATUS = {
    "t": 1.5,
    "epoch": 3,
    "train_loss": 0.25,
    "test_loss": 0.3,
    "accuracy": 0.9,
    "train_accuracy": 0.92,
    "hamiltonian": 0.27,
    "ledger": 3.2e-6,
    "nfe": 120,
    "steps_per_second": 40.0,
    "device": "cpu",
}


def small_trainer(**settings) -> Trainer:
    return Trainer(make_config("default", n_samples=60, **settings))


# ------------------------------------------------------------------ the gap curve
def test_a_window_profile_carries_the_times_of_its_thinned_path():
    trainer = small_trainer()
    records = [trainer.last, *trainer.advance(12)]
    window = LandscapeWindow(trainer, resolution=5, min_seconds=0.0)
    assert window.profile() is None  # no surface yet
    window.update(records)
    whole = window.profile()
    np.testing.assert_allclose(whole.t, [r.t for r in records])
    thinned = window.profile(max_points=4)
    assert len(thinned.t) == 4 and thinned.t[0] == records[0].t and thinned.t[-1] == records[-1].t
    index = [i for i, r in enumerate(records) if r.t in set(thinned.t)]
    np.testing.assert_allclose(thinned.actual, whole.actual[index])
    # the surface under the path is the same potential at the projection: equal on
    # the plane, and the gap grows with the distance off it
    assert np.isfinite(whole.on_plane).all()
    on = whole.off_plane < 1e-6
    np.testing.assert_allclose(whole.actual[on], whole.on_plane[on], rtol=1e-4)


def test_the_pictures_publish_a_gap_curve_that_follows_the_run():
    trainer = small_trainer()
    start = trainer.last
    pictures = Pictures(trainer, resolution=5)
    for _ in range(6):  # a surface first, then each picture once
        pictures.turn()
    first = pictures.shown.profile
    assert first is not None and len(first.t) == 1
    records = trainer.advance(10)
    pictures.track(records)
    assert wait_for(lambda: pictures.turn() or pictures.shown.profile.version != first.version)
    profile = pictures.shown.profile
    assert profile.t[-1] == pytest.approx(records[-1].t)
    assert np.all(np.diff(profile.t) > 0)
    assert np.isfinite(profile.actual).all() and np.isfinite(profile.surface).all()
    # the solid line is the potential the run had: at t = 0, the first record's
    a = trainer.system.potential_gain
    assert profile.actual[0] == pytest.approx(a * start.train_loss, rel=1e-3)


def test_profile_columns_are_the_curves_and_their_gap():
    picture = ProfilePicture(
        t=np.array([0.0, 0.1, 0.2]),
        actual=np.array([1.0, 0.8, 0.5]),
        surface=np.array([1.0, 0.7, 0.6]),
        off_plane=np.array([0.0, 0.1, 0.2]),
        version=3,
    )
    columns = presenter.profile_columns(picture)
    assert set(columns) == {"t", "actual", "surface", "gap"}
    np.testing.assert_allclose(columns["gap"], [0.0, 0.1, -0.1])
    assert all(len(v) == 3 for v in columns.values())
    assert all(len(v) == 0 for v in presenter.profile_columns(None).values())
    assert presenter.picture_key(picture) == 3 and presenter.picture_key(None) is None


# ------------------------------------------------------------------ help
def test_every_term_of_the_status_line_explains_itself():
    line = presenter.status_line(STATUS)
    terms = re.findall(r'<span class="phviz-term" title="([^"]*)"[^>]*>(.*?)</span>', line)
    names = ["t", "epoch", "train loss", "test loss", "accuracy", "H", "ledger", "nfe"]
    names += ["steps/s", "device"]
    assert len(terms) == len(names) == line.count(" · ") + 1
    for (title, text), name in zip(terms, names, strict=True):
        assert html.unescape(title) == help.STATUS[name] != "", name
        assert name in re.sub("<[^>]+>", "", text) or name == "device"
    assert "cpu" in terms[-1][1] and "steps/s" in terms[-2][1]
    assert "3.2e-06" in line  # the ledger's residual, readable when tiny
    without = presenter.status_line({**STATUS, "accuracy": math.nan})
    assert "accuracy" not in re.sub(r'title="[^"]*"', "", without)


def test_every_plot_on_the_page_has_its_help():
    e = Explorer(make_config("default", n_samples=60, horizon=0.0), live=False)
    try:
        names = set(e.plots.panes)
        assert {"landscape", "profile", "task", "phase", "energy"} <= names
        assert names - {"task", "energy"} <= set(help.PLOTS)  # energy: its inner pane's
        e.plots.show()  # the figures in their rows, as after the page's first update
        icons = e.layout.select(pn.widgets.TooltipIcon)
        texts = {icon.value.content for icon in icons}
        for name in ("landscape", "profile", "phase", "energy", "parameters", "momenta"):
            assert help.PLOTS[name] in texts, name
        assert e.plots.profile_fig in [p.object for p in e.layout.select(pn.pane.Bokeh)]
        assert wait_for(lambda: e.update_view() or e.plots.task_kind is not None)
        kind = e.plots.task_kind
        assert e.plots.panes["task"].icon.value.content == help.plot_help(kind) != ""
        e.layout.active = 1  # the gain map's tab, built on its first opening
        map_texts = {i.value.content for i in e.layout.select(pn.widgets.TooltipIcon)}
        assert help.PLOTS["gainmap"] in map_texts
        if "modes" in help.PLOTS:
            assert help.PLOTS["modes"] in map_texts | texts or len(e.layout) > 2
    finally:
        e.close()


# ------------------------------------------------------------------ presenter view
def test_the_presenter_view_puts_the_lessons_plots_in_its_first_row():
    link = parse_link({"lesson": "underdamped", "present": "1"})
    e = Explorer(link=link, live=False)
    try:
        (top, first), (bottom, rest) = e.plots.rows
        assert first[0] is e.plots.panes["energy"]
        assert [e.plots.panes[n] for n in focus("underdamped")] == first
        assert top.height <= 450  # under the status line on a 720-pixel screen
        below = rest[0].select(pn.pane.Bokeh)
        assert e.plots.profile_fig in [p.object for p in below]
    finally:
        e.close()
    assert focus(None)[0] == "energy" and focus("kick")[0] == "energy"


# ------------------------------------------------------------------ refused settings
def test_running_changes_name_what_the_sidebar_must_show():
    asked = settings_for(make_config("default", hidden="4000,4000,4000", damping=0.7))
    default = make_config("default").values()
    quiet, changes = running_changes(asked, Kept(default, True, "refused"), REBUILD)
    assert quiet == {"hidden": "16,16"} and changes == {"damping": default["damping"]}
    # a refused change of a running model: only the model's settings go back
    quiet, changes = running_changes(asked, Kept(default, False, "refused"), REBUILD)
    assert quiet == {"hidden": "16,16"} and changes == {}


def test_a_refused_link_runs_the_default_and_the_sidebar_shows_it():
    e = Explorer(link=parse_link({"hidden": "4000,4000,4000", "n_samples": "60"}), live=False)
    try:
        hidden = e.controls.widgets["hidden"]
        assert wait_for(lambda: e.update_view() or (e.session.ready and hidden.value == "16,16"))
        assert e.settings.hidden == "16,16" and e.session.run.dim < 1000
        assert e.banner.visible and "could not be used" in e.banner.object
        assert "sidebar shows" in e.banner.object
        build = e.session.run.build
        # a refused change in the sidebar: the running model stays, and so does its value
        e.settings.hidden = "4000,4000"
        assert hidden.value == "4000,4000"
        kept = "previous model is kept"
        assert wait_for(lambda: e.update_view() or kept in e.banner.object)
        assert wait_for(lambda: e.update_view() or hidden.value == "16,16")
        assert e.session.run.build == build  # not rebuilt
    finally:
        e.close()


def test_a_refused_gain_is_told_in_the_banner_and_the_box_shows_the_running_value():
    """A negative damping typed into its box reaches the settings, whose refusal names
    the gain; the page's handler puts it in the banner and the box back to the run's."""
    e = Explorer(make_config("default", horizon=0.0), live=False)
    try:
        box = e.controls.widgets["damping"]
        running = e.settings.damping
        with pytest.raises(ValueError, match="Invalid damping") as refused:
            box.value = -1.0  # what the page's edit does; Panel hands the error on
        assert e.settings.damping == running
        tell(e, refused.value)
        assert box.value == running
        assert e.banner.visible and e.banner.alert_type == "danger"
        assert "Invalid damping: -1.0" in e.banner.object and "keeps the value" in e.banner.object
    finally:
        e.close()
