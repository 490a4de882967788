"""The explorer's page: its Bokeh figures and their sources, the panes they sit in,
the tabs, and the template a served page uses."""

from __future__ import annotations

import functools
import threading

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource

from ..landscape import extent_around
from . import figures, firstview, gapview, helpview
from .history import column_names
from .intake import TRACKED_COLUMNS

TITLE = "phviz · port-Hamiltonian training"
HEADER = "#1f4e79"


def _empty_image() -> dict:
    return figures.image_data(np.zeros(2), np.zeros(2), np.zeros((1, 1)))


class Plots:
    """The live tab's figures and the sources that feed them."""

    def __init__(self, phase_coordinate: int = 0):
        n = TRACKED_COLUMNS
        self.series = ColumnDataSource({name: np.zeros(0) for name in column_names(n)})
        self.timeline = figures.timeline_figures(self.series, n)
        self.start = firstview.start_markers(self.timeline)
        self.phase_head = ColumnDataSource(dict(x=[], y=[]))
        self.phase_lines = ColumnDataSource(dict(x=[], y=[]))
        self.phase_fig, self.phase_path, self.phase_dot = figures.phase_figure(
            self.series, self.phase_head, self.phase_lines
        )
        figures.show_phase_coordinate(self.phase_path, self.phase_dot, phase_coordinate)
        self.surface = ColumnDataSource(_empty_image())
        self.surface_lines = ColumnDataSource(dict(x=[], y=[]))
        self.trail = ColumnDataSource(dict(x=[], y=[], t=[], v=[]))
        self.head = ColumnDataSource(dict(x=[], y=[]))
        self.landscape_fig, self.landscape_mapper, self.trail_cmap = figures.landscape_figure(
            self.surface, self.surface_lines, self.trail, self.head
        )
        self.profile = gapview.profile_source()
        self.profile_fig = gapview.profile_figure(self.profile)
        placeholder = figures.new_figure("Preparing the run…", "", "")
        placeholder.text(x=[0], y=[0], text=["building the model…"], text_font_size="18px")
        self.task_pane = pn.pane.Bokeh(placeholder, sizing_mode="stretch_both")
        self.task_kind = None
        self.task_fig = None
        self.task_sources: dict[str, ColumnDataSource] = {}
        self.task_mapper = None
        self.styles: list = []  # restyling for every task figure to come (presenter view)
        self.key = None  # the energy plot's key, once on a page
        self.rows: list = []  # (row, its figures' panes) once on a page; see live_tab
        self.panes: dict = {}  # each plot's pane with its info icon, by help name

    @property
    def shown(self) -> bool:
        """Whether the figures are in their rows (see ``live_tab``)."""
        return all(row.objects == objects for row, objects in self.rows)

    def show(self) -> None:
        """Put the figures in their rows on the page, in place of the placeholders."""
        for row, objects in self.rows:
            if row.objects != objects:
                row.objects = objects

    def new_task_figure(self, ds, kind: str):
        """A figure for task ``kind`` ('regions', 'field', 'confusion' or 'none') on data
        set ``ds``, with its static layers filled in."""
        self.task_kind = kind
        self.task_mapper = None
        if self.task_kind == "regions":
            regions = ColumnDataSource(_empty_image())
            x_test, y_test = ds.x_test.cpu().numpy(), ds.y_test.cpu().numpy()
            if ds.x_test.shape == ds.x_train.shape and bool((ds.x_test == ds.x_train).all()):
                x_test, y_test = x_test[:0], y_test[:0]  # all points train and test: once
            x_train, y_train = ds.x_train.cpu().numpy(), ds.y_train.cpu().numpy()
            points = ColumnDataSource(figures.point_data(x_train, y_train, x_test, y_test))
            self.task_sources = {"regions": regions, "points": points}
            self.task_fig = figures.regions_figure(regions, points, ds.n_classes)
        elif self.task_kind == "field":
            sources = {k: ColumnDataSource() for k in ("error", "true", "learned")}
            sources["error"].data = _empty_image()
            for key in ("true", "learned"):
                sources[key].data = dict(x0=[], y0=[], x1=[], y1=[])
            self.task_sources = sources
            self.task_fig, self.task_mapper = figures.field_figure(
                sources["error"], sources["true"], sources["learned"]
            )
        else:
            cells = ColumnDataSource(dict(predicted=[], true=[], count=[], label=[]))
            self.task_sources = {"cells": cells}
            self.task_fig, self.task_mapper = figures.confusion_figure(cells, max(ds.n_classes, 1))
        if self.task_kind in ("regions", "field"):  # the extent the pictures will have
            points = ds.x_train.cpu().numpy()
            xmin, xmax, ymin, ymax = extent_around(points, margin=0.15, per_axis=True)
            self.task_fig.x_range.update(start=xmin, end=xmax)
            self.task_fig.y_range.update(start=ymin, end=ymax)
        for style in self.styles:
            style(self.task_fig)
        return self.task_fig


class SparePlots:
    """The next session's figures, built ahead on the worker pool.

    Building a session's figures is a good part of the work a new page waits for on
    the server's thread; built while the server is idle, it is done before the next
    page is asked for. The build starts once a page has loaded: started with the
    page's own build, it took the interpreter from it and made that page later. A page
    that comes while the spare is being built, as pages arriving in quick succession
    do (a class opening one link at once), waits for it (up to ``patience`` seconds):
    the rest of that build is never longer than a build from the start. Only a page
    that finds no spare at all (the first on a server not warmed) builds its own.
    """

    def __init__(self, patience: float = 5.0):
        self._task = None
        self._lock = threading.Lock()
        self.patience = patience

    def take(self, scheduler, phase_coordinate: int = 0) -> Plots:
        with self._lock:  # a spare goes to one page only
            task, self._task = self._task, None
        if task is not None and not task.wait(self.patience):
            with self._lock:  # late: it serves the next page, unless one is under way
                if self._task is None:
                    self._task, task = task, None
                else:
                    task = None
        pn.state.onload(functools.partial(self.prepare, scheduler))
        plots = None
        if task is not None:
            try:
                plots = task.result()
            except Exception:  # built anew below, where an error is seen
                plots = None
        if plots is None:
            return Plots(phase_coordinate)
        figures.show_phase_coordinate(plots.phase_path, plots.phase_dot, phase_coordinate)
        return plots

    def prepare(self, scheduler) -> None:
        """Start building the next page's figures, unless a spare is built or under way."""
        with self._lock:
            if self._task is None:
                self._task = scheduler.run_once(Plots)

    @property
    def spare(self):
        """The pool's task building (or holding) the next page's figures, if any."""
        return self._task


spare_plots = SparePlots()


def live_tab(plots: Plots, banner, clock, *above) -> pn.Column:
    """The pictures over the time series, under the banner, ``above`` and the status line.

    The landscape has its gap curve under it. Every plot carries an info icon that
    says how to read it (``helpview``); the panes are ``plots.panes`` by help name.
    The figures' rows hold light placeholders until ``Plots.show``: the page is usable
    (Run, the settings, the status line) before the browser has built the figures.
    """

    def pane(fig, height, name):
        bokeh = pn.pane.Bokeh(fig, sizing_mode="stretch_both", min_height=height)
        return helpview.helped(bokeh, name, min_height=height)

    energy, thetas, momenta = plots.timeline
    key = pn.pane.HTML(
        figures.energy_key(),
        sizing_mode="stretch_width",
        styles={"font-size": "15px", "line-height": "1.4"},
        margin=(0, 10),
    )
    plots.key = key
    panes = plots.panes
    panes["landscape"] = pane(plots.landscape_fig, 400, "landscape")
    panes["profile"] = pane(plots.profile_fig, 190, "profile")
    panes["task"] = helpview.helped(plots.task_pane, plots.task_kind or "none", min_height=430)
    panes["phase"] = pane(plots.phase_fig, 430, "phase")
    panes["energy"] = pn.Column(pane(energy, 300, "energy"), key, sizing_mode="stretch_both")
    panes["parameters"] = pane(thetas, 360, "parameters")
    panes["momenta"] = pane(momenta, 360, "momenta")
    landscape = pn.Column(
        panes["landscape"], panes["profile"], sizing_mode="stretch_both", margin=0
    )
    pictures = [landscape, panes["task"], panes["phase"]]
    timeline = [panes["energy"], panes["parameters"], panes["momenta"]]
    rows = ((pictures, 640, "phviz-pictures"), (timeline, 370, "phviz-timeline"))
    plots.rows = [
        (pn.Row(_drawing(h), sizing_mode="stretch_width", height=h, css_classes=[css]), objects)
        for objects, h, css in rows
    ]
    patch = pn.pane.HTML(f"<script>{figures.CALM_STYLES_JS}</script>", width=0, height=0, margin=0)
    rows = [row for row, _ in plots.rows]
    return pn.Column(patch, banner, *above, clock, *rows, sizing_mode="stretch_width")


def _drawing(height: int) -> pn.pane.HTML:
    """A light stand-in for a row of figures until they are shown."""
    return pn.pane.HTML(
        '<div class="phviz-drawing">Drawing the plots…</div>',
        height=height - 10,
        sizing_mode="stretch_width",
        styles={
            "font-size": "17px",
            "color": "#777777",
            "background": "#f4f4f4",
            "padding": "12px",
            "border-radius": "6px",
        },
    )


def lazy_section(title: str, build, css_class: str) -> pn.Card:
    """A collapsed card titled ``title`` whose contents ``build()`` makes on its first
    expand. Panel builds (and sends) a collapsed card's contents all the same; an empty
    card costs the page a header only."""
    card = pn.Card(
        title=title,
        collapsed=True,
        sizing_mode="stretch_width",
        margin=(5, 10),
        css_classes=["phviz-section", css_class],
    )

    def fill(event) -> None:
        card.param.unwatch(watcher)
        card.objects = list(build())

    watcher = card.param.watch(fill, "collapsed")
    return card


def banner() -> pn.pane.Alert:
    return pn.pane.Alert(
        "",
        alert_type="info",
        visible=False,
        sizing_mode="stretch_width",
        css_classes=["phviz-banner"],
        styles={"font-size": "17px"},
    )


def tabs(live, gain_map, *more) -> pn.Tabs:
    """The live tab and the gain map's, which is filled with ``gain_map`` when it is
    first opened: drawing the map costs every page a second, and most visits never
    open it. ``more``: (title, build) of further tabs, each filled with ``build()``
    when it is first opened, for the same reason."""
    later = pn.Column(sizing_mode="stretch_width")
    others = [(title, pn.Column(sizing_mode="stretch_width"), build) for title, build in more]
    both = pn.Tabs(
        ("Live", live),
        ("Gain map", later),
        *((title, column) for title, column, _ in others),
        sizing_mode="stretch_width",
        css_classes=["phviz-tabs"],
    )

    def fill(event) -> None:
        if event.new == 1 and not len(later):
            later.append(gain_map)
        for index, (_, column, build) in enumerate(others, start=2):
            if event.new == index and not len(column):
                column.append(build())

    both.param.watch(fill, "active")
    return both


def page(main: list, sidebar: list | None = None) -> pn.template.BootstrapTemplate:
    """The served page around the explorer (or around the note that the server is full)."""
    if sidebar is None:
        template = pn.template.BootstrapTemplate(title=TITLE, main=main, header_background=HEADER)
    else:
        template = pn.template.BootstrapTemplate(
            title=TITLE,
            # One root per template area: each root added to a Bokeh document walks every
            # model already in it, so forty sidebar roots cost seconds per page.
            sidebar=[pn.Column(*sidebar, sizing_mode="stretch_width")],
            main=main,
            sidebar_width=340,
            header_background=HEADER,
            # The spinner would turn at every update; and Panel sets every page's spinner
            # on every callback of every session, which grows with the square of the tabs.
            busy_indicator=None,
        )
    _without_mathjax(template)
    return template


def _without_mathjax(template) -> None:
    """Send the page without MathJax (1.8 MB of script for the browser to load and run).

    Panel sends it with every page whose roots hold an HTML pane, for the TeX such a
    pane may show; a template's one is its empty area for scripts, which this page
    never uses, and no text here is TeX. A spacer takes its place.
    """
    items = getattr(template, "_render_items", {})  # Panel's own: absent, nothing to do
    if "js_area" in items:
        items["js_area"] = (pn.Spacer(width=0, height=0, margin=0), [])
