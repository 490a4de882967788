"""The explorer: a sidebar of settings, run controls, and live linked plots.

``Explorer`` is a Panel ``Viewer``. One ``LiveSession`` per browser tab (settings →
slices of training and pictures on the process's worker pool → history); a
periodic callback drains it and streams only what changed, under ``pn.io.hold()``,
and only once the page has drawn the previous update (``FrameClock``). Building a
tab does no model work: the page is sent at once, and the run's first record and
pictures follow when the pool has made them. Nothing here computes physics.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource
from panel.io.callbacks import PeriodicCallback

from ..budget import Budget
from ..config import PRESETS, SOLVERS, TrainingConfig, make_config
from ..data import dataset_defaults
from ..landscape import extent_around
from ..scheduler import Scheduler
from . import figures
from .clock import FrameClock
from .gainview import GainView
from .history import column_names, momentum_column, theta_column
from .live import (
    GAINS,
    REBUILD,
    SOLVER_SETTINGS,
    TRACKED_COLUMNS,
    LiveSession,
    Notice,
    Tick,
)
from .worker import contour_lines, damping_note, task_kind

log = logging.getLogger(__name__)


class PathPoint(NamedTuple):
    """A point of the stored path, fed to a new landscape window."""

    t: float
    theta: np.ndarray


SPEEDS = {"5 /s": 5, "10 /s": 10, "20 /s": 20, "40 /s": 40, "100 /s": 100, "fastest": 0}
PLANES = {
    "PCA of the path": "pca",
    "random (filter-normalised)": "random",
    "two parameters": "coordinates",
}
BATCHES = {"full batch": 0, "8": 8, "16": 16, "32": 32, "64": 64, "128": 128, "256": 256}
TOLERANCES = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]
STEPS = [0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]
PLANE_NAMES = {"pca": "PCA", "random": "random plane", "coordinates": "two parameters"}
WATCHED = GAINS + SOLVER_SETTINGS + REBUILD
# The periodic callback's period: at most 12.5 updates a second, fewer when the
# page has not drawn the last one yet (FrameClock).
TICK_SECONDS = 0.08
# Updates a second that one server process sends, all running tabs together, once
# there are more tabs than that allows at the full rate: every update costs the
# server's one thread (and a browser on the same machine) milliseconds that training
# could use, and a tab among many needs its curves no smoother than a few times a
# second.
SERVER_UPDATES_PER_SECOND = 25.0


def refresh_ms(args: dict | None = None) -> int:
    """The update period in ms: ``TICK_SECONDS``, or the page's ``?refresh=`` (40 to
    2000), for whoever wants fewer updates than the page could draw."""
    default = round(1000 * TICK_SECONDS)
    args = (pn.state.session_args or {}) if args is None else args
    try:
        value = int(args.get("refresh", [b""])[0].decode() or default)
    except (ValueError, UnicodeDecodeError, AttributeError, IndexError):
        return default
    return min(2000, max(40, value))


def settings_for(preset: str) -> TrainingConfig:
    """A preset with the data set's own size, noise and split filled in (widgets need
    numbers, not None)."""
    config = make_config(preset)
    defaults = dataset_defaults(config.dataset)
    for key in ("n_samples", "noise", "train_fraction"):
        if getattr(config, key) is None:
            setattr(config, key, defaults[key])
    return config


class Explorer(pn.viewable.Viewer):
    """Port-Hamiltonian training, live: choose, run, watch."""

    preset = param.Selector(default="default", objects=list(PRESETS), doc="A set-up to start from.")
    speed = param.Selector(default=40, objects=SPEEDS, doc="Switching intervals per second.")
    plane = param.Selector(default="pca", objects=PLANES, doc="Plane of the loss landscape.")
    plane_x = param.Integer(default=0, bounds=(0, None), doc="First parameter of the plane.")
    plane_y = param.Integer(default=1, bounds=(0, None), doc="Second parameter of the plane.")
    phase_coordinate = param.Integer(
        default=0, bounds=(0, 63), doc="Tracked coordinate drawn in the phase portrait."
    )
    sample_seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the tracked sample.")

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        live: bool = True,
        budget: Budget | None = None,
        scheduler: Scheduler | None = None,
        **params,
    ):
        super().__init__(**params)
        self.settings = config if config is not None else settings_for(self.preset)
        self.session = LiveSession(
            self.settings,
            max_rate=self.speed or None,
            budget=budget,
            scheduler=scheduler,
            plane=self.plane,
            coordinates=(self.plane_x, self.plane_y),
        )
        self.task_kind = None
        self._task_fig_new = False
        self._loading = False
        self._pausing = False  # Pause was pressed; the session's last slice is ending
        self._sent = {"landscape": -1, "trail": -1, "task": -1, "phase": -1, "stiffness": -1}
        self._unsent: Tick | None = None
        self._sent_at = -math.inf  # when the last update went out
        # The status line and the flow control travel in one message per update.
        self.clock = FrameClock(
            rendered=not live,  # without a page: as if drawn
            text='<div class="phviz-preparing">Preparing the run…</div>',
            height=34,
            sizing_mode="stretch_width",
            styles={"font-size": "19px"},
            margin=(5, 10),
        )
        self.status_text: str | None = None  # the status line's HTML last made
        self._build_widgets()
        self._build_plots()
        self._build_layout()
        self.gains = GainView(self, self.timeline[0])
        # The gain map is put in its tab when the tab is first opened: drawing it costs
        # every page a second, and most visits never open it.
        self._map_tab = pn.Column(sizing_mode="stretch_width")
        self.layout = pn.Tabs(
            ("Live", self.layout),
            ("Gain map", self._map_tab),
            sizing_mode="stretch_width",
            css_classes=["phviz-tabs"],
        )
        self.layout.param.watch(self._on_tab, "active")
        self.settings.param.watch(self._on_settings, list(WATCHED))
        self.clock.param.watch(lambda e: self.session.set_visible(e.new), "visible")
        # The page drew the last update: send the next at once, not at the next tick.
        self.clock.param.watch(lambda _: self.update_view(), "drawn")
        self.clock.param.watch(lambda _: self.update_view(force=True), "rendered")
        self._callback = None
        self._show_controls()
        if live:
            # A background callback: the updates are not user actions, so they neither
            # mark the page busy nor log a line each (both cost the server's thread).
            self._callback = PeriodicCallback(
                callback=self.update_view, period=refresh_ms(), background=True, log=False
            )
            self._callback.start()
            pn.state.on_session_destroyed(self._destroyed)

    # ------------------------------------------------------------ lifetime
    @property
    def worker(self):
        """The session's pictures (None until the first build)."""
        return self.session.pictures

    def close(self) -> None:
        """Stop this session's work."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.gains.close()
        self.session.close()

    def _on_tab(self, event) -> None:
        if event.new == 1 and not len(self._map_tab):
            self._map_tab.append(self.gains.map)

    def _destroyed(self, session_context) -> None:
        self.close()

    # ------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        s = self.settings
        self.run_button = pn.widgets.Button(
            name="Run", button_type="primary", width=95, css_classes=["phviz-run"]
        )
        self.step_button = pn.widgets.Button(name="Step", width=80, css_classes=["phviz-step"])
        self.reset_button = pn.widgets.Button(name="Reset", width=80, css_classes=["phviz-reset"])
        self.run_button.on_click(self._on_run)
        self.step_button.on_click(self._on_step)
        self.reset_button.on_click(self._on_reset)
        self.speed_widget = pn.widgets.Select.from_param(
            self.param.speed, name="Speed", css_classes=["phviz-speed"]
        )
        self.preset_widget = pn.widgets.Select.from_param(self.param.preset, name="Preset")
        self.new_data_button = pn.widgets.Button(name="New data (new seed)", width=160)
        self.new_data_button.on_click(lambda _: setattr(s, "data_seed", s.data_seed + 1))
        self.device_note = pn.pane.Markdown("", margin=(0, 10))
        bounded = pn.widgets.EditableFloatSlider
        self.widgets = {
            "dataset": pn.widgets.Select.from_param(s.param.dataset, name="Data set"),
            "noise": bounded.from_param(
                s.param.noise, start=0.0, end=2.0, fixed_start=0.0, fixed_end=5.0, step=0.01
            ),
            "n_samples": pn.widgets.IntSlider.from_param(
                s.param.n_samples, start=20, end=4000, step=10, name="Size (points)"
            ),
            "train_fraction": pn.widgets.FloatSlider.from_param(
                s.param.train_fraction, start=0.1, end=1.0, step=0.05, name="Train fraction"
            ),
            "architecture": pn.widgets.RadioButtonGroup.from_param(s.param.architecture),
            "hidden": pn.widgets.TextInput.from_param(s.param.hidden, name="Hidden widths"),
            "activation": pn.widgets.Select.from_param(s.param.activation, name="Activation"),
            "damping": bounded.from_param(
                s.param.damping,
                start=0.0,
                end=3.0,
                fixed_start=0.0,
                fixed_end=100.0,
                step=0.05,
                name="Damping B",
            ),
            "inertia": bounded.from_param(
                s.param.inertia,
                start=0.1,
                end=5.0,
                fixed_start=1e-3,
                fixed_end=1e3,
                step=0.05,
                name="Inertia M",
            ),
            "potential_gain": bounded.from_param(
                s.param.potential_gain,
                start=0.1,
                end=10.0,
                fixed_start=1e-3,
                fixed_end=1e4,
                step=0.1,
                name="Potential gain a",
            ),
            "weight_decay": bounded.from_param(
                s.param.weight_decay,
                start=0.0,
                end=0.2,
                fixed_start=0.0,
                fixed_end=10.0,
                step=0.005,
                name="Weight decay c",
            ),
            "batch_size": pn.widgets.Select.from_param(
                s.param.batch_size, options=BATCHES, name="Batch size"
            ),
            "switching_interval": bounded.from_param(
                s.param.switching_interval,
                start=0.01,
                end=1.0,
                fixed_start=1e-3,
                fixed_end=10.0,
                step=0.01,
                name="Switching interval Δt",
            ),
            "solver": pn.widgets.Select.from_param(s.param.solver, options=list(SOLVERS)),
            "rtol": pn.widgets.Select.from_param(s.param.rtol, options=TOLERANCES, name="rtol"),
            "atol": pn.widgets.Select.from_param(s.param.atol, options=TOLERANCES, name="atol"),
            "step_size": pn.widgets.Select.from_param(
                s.param.step_size, options=STEPS, name="Fixed step (rk4, euler, …)"
            ),
            "max_steps": pn.widgets.IntInput.from_param(
                s.param.max_steps, start=10, end=1_000_000, name="Most solver steps per interval"
            ),
            "device": pn.widgets.RadioButtonGroup.from_param(s.param.device),
        }
        for key, widget in self.widgets.items():  # a handle for tests and styling
            widget.css_classes = [*widget.css_classes, f"phviz-{key.replace('_', '-')}"]
        self.plane_widget = pn.widgets.RadioBoxGroup.from_param(self.param.plane)
        self.plane_x_widget = pn.widgets.IntInput.from_param(self.param.plane_x, name="θ index x")
        self.plane_y_widget = pn.widgets.IntInput.from_param(self.param.plane_y, name="θ index y")
        self.sample_button = pn.widgets.Button(name="New sample of θ_i", width=160)
        self.sample_button.on_click(lambda _: setattr(self, "sample_seed", self.sample_seed + 1))
        self.phase_widget = pn.widgets.IntSlider.from_param(
            self.param.phase_coordinate, start=0, end=7, name="Phase portrait of sample #"
        )
        self.banner = pn.pane.Alert(
            "",
            alert_type="info",
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["phviz-banner"],
            styles={"font-size": "17px"},
        )
        self.damping_note = pn.pane.HTML(
            '<div class="phviz-damping-note">critical damping: estimating…</div>',
            css_classes=["phviz-critical"],
            styles={"font-size": "15px", "white-space": "normal", "line-height": "1.3"},
            sizing_mode="stretch_width",
            margin=(0, 10, 8, 10),
        )

    def sidebar(self) -> list:
        w = self.widgets
        return [
            pn.Row(self.run_button, self.step_button, self.reset_button),
            self.speed_widget,
            self.preset_widget,
            pn.pane.Markdown("### Data"),
            w["dataset"],
            w["noise"],
            w["n_samples"],
            w["train_fraction"],
            self.new_data_button,
            pn.pane.Markdown("### Model"),
            w["architecture"],
            w["hidden"],
            w["activation"],
            pn.pane.Markdown("### Gains"),
            w["damping"],
            self.damping_note,
            w["inertia"],
            w["potential_gain"],
            w["weight_decay"],
            *self.gains.sidebar(),
            pn.pane.Markdown("### Solver"),
            w["batch_size"],
            w["switching_interval"],
            w["solver"],
            w["rtol"],
            w["atol"],
            w["step_size"],
            w["max_steps"],
            pn.pane.Markdown("### Device"),
            w["device"],
            self.device_note,
            pn.pane.Markdown("### Landscape plane"),
            self.plane_widget,
            pn.Row(self.plane_x_widget, self.plane_y_widget),
            pn.pane.Markdown("### Tracked coordinates"),
            self.sample_button,
            self.phase_widget,
        ]

    # ------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        n = TRACKED_COLUMNS
        self.series = ColumnDataSource({name: np.zeros(0) for name in column_names(n)})
        self.timeline = figures.timeline_figures(self.series, n)
        self.phase_head = ColumnDataSource(dict(x=[], y=[]))
        self.phase_lines = ColumnDataSource(dict(x=[], y=[]))
        self.phase_fig, self.phase_path, self.phase_dot = figures.phase_figure(
            self.series, self.phase_head, self.phase_lines
        )
        figures.show_phase_coordinate(self.phase_path, self.phase_dot, self.phase_coordinate)
        self.surface = ColumnDataSource(
            figures.image_data(np.zeros(2), np.zeros(2), np.zeros((1, 1)))
        )
        self.surface_lines = ColumnDataSource(dict(x=[], y=[]))
        self.trail = ColumnDataSource(dict(x=[], y=[], t=[], v=[]))
        self.head = ColumnDataSource(dict(x=[], y=[]))
        self.landscape_fig, self.landscape_mapper, self.trail_cmap = figures.landscape_figure(
            self.surface, self.surface_lines, self.trail, self.head
        )
        placeholder = figures.new_figure("Preparing the run…", "", "")
        placeholder.text(x=[0], y=[0], text=["building the model…"], text_font_size="18px")
        self.task_pane = pn.pane.Bokeh(placeholder, sizing_mode="stretch_both")

    def _task_figure(self):
        """A figure for the current data set's task, with its static layers filled in."""
        trainer = self.session.trainer
        ds = trainer.dataset
        self.task_kind = task_kind(trainer)
        self.task_sources = {}
        if self.task_kind == "regions":
            regions = ColumnDataSource(
                figures.image_data(np.zeros(2), np.zeros(2), np.zeros((1, 1)))
            )
            points = ColumnDataSource(
                figures.point_data(
                    ds.x_train.cpu().numpy(),
                    ds.y_train.cpu().numpy(),
                    ds.x_test.cpu().numpy(),
                    ds.y_test.cpu().numpy(),
                )
            )
            self.task_sources = {"regions": regions, "points": points}
            self.task_fig = figures.regions_figure(regions, points, ds.n_classes)
        elif self.task_kind == "field":
            sources = {k: ColumnDataSource() for k in ("error", "true", "learned")}
            sources["error"].data = figures.image_data(np.zeros(2), np.zeros(2), np.zeros((1, 1)))
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
        # A figure swapped into the page takes changes from the next message on: the
        # browser drops those that arrive with the swap itself.
        self._sent["task"] = -1
        self._task_fig_new = True
        return self.task_fig

    def __panel__(self):
        return self.layout

    def _build_layout(self) -> None:
        def pane(fig, height):
            return pn.pane.Bokeh(fig, sizing_mode="stretch_both", min_height=height)

        top = pn.Row(
            pane(self.landscape_fig, 430),
            self.task_pane,
            pane(self.phase_fig, 430),
            sizing_mode="stretch_width",
            height=440,
            css_classes=["phviz-pictures"],
        )
        energy, thetas, momenta = self.timeline
        key = pn.pane.HTML(
            figures.energy_key(),
            sizing_mode="stretch_width",
            styles={"font-size": "15px", "line-height": "1.4"},
            margin=(0, 10),
        )
        bottom = pn.Row(
            pn.Column(pane(energy, 300), key, sizing_mode="stretch_both"),
            pane(thetas, 360),
            pane(momenta, 360),
            sizing_mode="stretch_width",
            height=370,
            css_classes=["phviz-timeline"],
        )
        patch = pn.pane.HTML(
            f"<script>{figures.CALM_STYLES_JS}</script>", width=0, height=0, margin=0
        )
        self.layout = pn.Column(
            patch, self.banner, self.clock, top, bottom, sizing_mode="stretch_width"
        )

    # ------------------------------------------------------------ events
    def _on_run(self, _event=None) -> None:
        if self._pausing:
            return  # a click while the last slice ends: the pause stands
        if self.session.playing:
            self.session.pause()  # the label turns to Run once the session settled
            self._pausing = True
        else:
            self.session.play()
        self.update_view(force=True)

    def _on_step(self, _event=None) -> None:
        self.session.step(1)
        self._show_controls()

    def _on_reset(self, _event=None) -> None:
        self.session.reset()
        self._show_controls()

    def _on_settings(self, *events) -> None:
        if self._loading:
            return
        changes = {e.name: e.new for e in events}
        if "dataset" in changes:  # a new data set comes with its own size and noise
            self._loading = True
            try:
                defaults = dataset_defaults(changes["dataset"])
                for key in ("n_samples", "noise", "train_fraction"):
                    setattr(self.settings, key, defaults[key])
            finally:
                self._loading = False
        self.session.apply(**changes)

    @param.depends("preset", watch=True)
    def _on_preset(self) -> None:
        fresh = settings_for(self.preset)
        self._loading = True
        try:
            self.settings.param.update(**fresh.values())
        finally:
            self._loading = False
        self.session.rebuild(f"Loaded the preset '{self.preset}': the run restarted at t = 0.")

    @param.depends("speed", watch=True)
    def _on_speed(self) -> None:
        self.session.set_speed(self.speed or None)

    @param.depends("plane", "plane_x", "plane_y", watch=True)
    def _on_plane(self) -> None:
        trainer = self.session.trainer
        if trainer is None:
            return
        dim = trainer.system.dim
        if self.plane == "coordinates" and (
            max(self.plane_x, self.plane_y) >= dim or self.plane_x == self.plane_y
        ):
            self.session.notice = Notice(
                f"Invalid plane coordinates: ({self.plane_x}, {self.plane_y}); choose two "
                f"different indices below {dim}.",
                "warning",
            )
            return
        coordinates = (self.plane_x, self.plane_y)
        self.session.set_plane(self.plane, coordinates, self._history_records())
        self._sent.update(landscape=-1, trail=-1)

    def _history_records(self) -> list[PathPoint]:
        history = self.session.history
        if history is None:
            return []
        return [
            PathPoint(t, theta)
            for t, theta in zip(history.times, history.thetas.copy(), strict=True)
        ]

    @param.depends("sample_seed", watch=True)
    def _on_sample(self) -> None:
        self.session.set_tracked(self.sample_seed)
        self._sent["phase"] = -1

    @param.depends("phase_coordinate", watch=True)
    def _on_phase_coordinate(self) -> None:
        if self.session.history is None:
            return
        k = min(self.phase_coordinate, self.session.history.n_tracked - 1)
        figures.show_phase_coordinate(self.phase_path, self.phase_dot, k)
        self.phase_lines.data = dict(x=[], y=[])
        self._sent["phase"] = -1

    # ------------------------------------------------------------ the tick
    def update_view(self, force: bool = False) -> None:
        """Take what the session produced and, once the page has drawn the last update
        (or when ``force``d), send what changed; errors become the banner."""
        try:
            # Settled before this poll: the poll has every record there will be.
            settled = self._pausing and self.session.settled
            self._unsent = _merged(self._unsent, self.session.poll())
            self.gains.update()
            if settled:  # the last records and the label Run go out together, now
                self._pausing = False
            if not self.session.ready:
                self._show_controls()
                return
            if not self.clock.rendered:
                return  # the page is still connecting: what went out now could be lost
            if not (force or settled or (self.clock.ready() and self._due())):
                return
            if not (force or settled or self._has_news(self._unsent)):
                self._show_controls()  # a notice may have changed; nothing else did
                return
            tick, self._unsent = self._unsent, None
            # The page's first update carries the numbers and curves only, so the page
            # is usable at once; the pictures follow in the next.
            first = self.clock.sent == 0
            with pn.io.hold():
                if not first and (tick.rebuilt or self.task_kind is None):
                    self.task_pane.object = self._task_figure()
                if tick.reset:
                    self._sent.update(landscape=-1, trail=-1, task=-1, phase=-1, stiffness=-1)
                self._stream(tick)
                if not first:
                    self._stream_pictures()
                    self._show_stiffness()
                self._show_status()
                self._show_controls()
            self.clock.tick(self.status_text)  # after the update has gone out
            self._sent_at = time.monotonic()
        except Exception as err:  # never a traceback in the page
            log.exception("explorer update")
            self.session.notice = Notice(f"The view could not be updated: {err}", "danger")
            self._show_controls()

    def _due(self) -> bool:
        """Whether this tab's share of the server's updates allows one now: the full
        rate with a few running tabs, ``SERVER_UPDATES_PER_SECOND`` shared with many."""
        scheduler = self.session.scheduler
        running = scheduler.load() * scheduler.workers  # tabs that want work now
        interval = running / SERVER_UPDATES_PER_SECOND
        return time.monotonic() - self._sent_at >= interval

    def _has_news(self, tick: Tick | None) -> bool:
        """Whether anything drawn would change (an idle paused page sends nothing)."""
        if tick is not None and (tick.records or tick.reset or tick.rebuilt):
            return True
        pictures = self.worker
        if pictures is None:
            return False
        sent = self._sent
        return (
            pictures.window.state.version != sent["landscape"]
            or (pictures.task is not None and pictures.task.version != sent["task"])
            or (pictures.phase is not None and pictures.phase.version != sent["phase"])
            or (
                pictures.stiffness is not None
                and (pictures.stiffness.version, float(self.settings.damping)) != sent["stiffness"]
            )
        )

    def _stream(self, tick) -> None:
        history = self.session.history
        if tick.reset or tick.update.rebuilt:
            self.series.data = history.columns()
        elif len(tick.update):
            self.series.stream(_inline(tick.update.rows))
        self._fit_ranges()
        last = history.last
        k = min(self.phase_coordinate, history.n_tracked - 1)
        if last is not None and k < len(last.theta_sample):
            self.phase_head.data = dict(
                x=[float(last.theta_sample[k])], y=[float(last.p_sample[k])]
            )

    def _fit_ranges(self) -> None:
        data = self.series.data
        t = np.asarray(data["t"], dtype=float)
        if not len(t):
            return
        t_range = self.timeline[0].x_range
        end = max(float(t[-1]), 1.0)
        if not t_range.end >= end or t_range.end > 2.0 * end:  # room to grow by a quarter
            t_range.update(start=0.0, end=1.25 * end)
        energy, thetas, momenta = self.timeline
        n = self.session.history.n_tracked
        columns = ("hamiltonian", "potential", "kinetic", "dissipated", "residual")
        figures.sticky_range(energy.y_range, np.concatenate([data[c] for c in columns]), log=True)
        theta = np.concatenate([data[theta_column(k)] for k in range(n)])
        p = np.concatenate([data[momentum_column(k)] for k in range(n)])
        figures.sticky_range(thetas.y_range, theta)
        figures.sticky_range(momenta.y_range, p)
        k = min(self.phase_coordinate, n - 1)
        q, pk = np.asarray(data[theta_column(k)]), np.asarray(data[momentum_column(k)])
        figures.sticky_range(self.phase_fig.x_range, q)
        figures.sticky_range(self.phase_fig.y_range, np.r_[pk, -pk])

    def _stream_pictures(self) -> None:
        if self.worker is None:
            return
        state = self.worker.window.state
        if state.plane is not None and state.version != self._sent["landscape"]:
            self._sent["landscape"] = state.version
            self._send_surface(state)
        self._send_trail(state)
        task = self.worker.task
        fresh, self._task_fig_new = self._task_fig_new, False
        if task is not None and task.version != self._sent["task"] and not fresh:
            self._sent["task"] = task.version
            self._send_task(task)
        self._request_phase()
        phase = self.worker.phase
        if phase is not None and phase.version != self._sent["phase"]:
            self._sent["phase"] = phase.version
            k = min(self.phase_coordinate, self.session.history.n_tracked - 1)
            if phase.index == self._tracked_index(k):
                levels = _levels(np.log10(phase.energy - np.nanmin(phase.energy) + 1e-4), 14)
                lines = contour_lines(
                    phase.qs,
                    phase.ps,
                    np.log10(phase.energy - np.nanmin(phase.energy) + 1e-4),
                    levels,
                )
                self.phase_lines.data = lines
                self.phase_fig.title.text = f"Phase portrait of {phase.label} (sample #{k})"

    def _send_trail(self, state) -> None:
        """Stream the path's new points; send it whole when the plane changed or the
        stored path was thinned."""
        t, xy = state.path_t, state.path_xy
        if not len(t) or len(xy) != len(t):  # no path yet, or not yet on a plane
            return
        version, sent_n, sent_t = self._sent["trail"] if self._sent["trail"] != -1 else (-1, 0, 0)
        if version == state.version and sent_n == len(t) and sent_t == t[-1]:
            return
        grown = version == state.version and len(t) > sent_n and sent_n and t[sent_n - 1] == sent_t
        if grown:
            self.trail.stream(
                _inline(
                    dict(
                        x=xy[sent_n:, 0],
                        y=xy[sent_n:, 1],
                        t=t[sent_n:],
                        v=np.full(len(t) - sent_n, np.nan),
                    )
                )
            )
        else:
            self.trail.data = dict(x=xy[:, 0], y=xy[:, 1], t=t, v=np.full(len(t), np.nan))
        self._sent["trail"] = (state.version, len(t), t[-1])
        self.head.data = _inline(dict(x=xy[-1:, 0], y=xy[-1:, 1]))
        self.trail_cmap["transform"].update(low=float(t[0]), high=float(max(t[-1], t[0] + 1e-9)))

    def _show_stiffness(self) -> None:
        estimate = self.worker.stiffness if self.worker is not None else None
        damping = float(self.settings.damping)
        key = (estimate.version, damping) if estimate is not None else -1
        if key == self._sent["stiffness"]:
            return
        self._sent["stiffness"] = key
        text = damping_note(estimate, damping)
        self.damping_note.object = f'<div class="phviz-damping-note">{text}</div>'

    def _send_surface(self, state) -> None:
        z = np.where(np.isfinite(state.Z), state.Z, np.nan)
        logz = np.log10(np.maximum(z, 1e-12))
        levels = _levels(logz, figures.LANDSCAPE_LEVELS)
        self.landscape_mapper.update(low=float(levels[0]), high=float(levels[-1]))
        self.surface.data = figures.image_data(*figures.smoothed(state.xs, state.ys, logz))
        self.surface_lines.data = contour_lines(state.xs, state.ys, logz, levels)
        fig = self.landscape_fig
        fig.x_range.update(start=float(state.xs[0]), end=float(state.xs[-1]))
        fig.y_range.update(start=float(state.ys[0]), end=float(state.ys[-1]))
        plane = state.plane
        fig.title.text = (
            f"Landscape · {PLANE_NAMES[plane.kind]} · {state.explained:.0%} of path variance"
        )
        fig.xaxis.axis_label, fig.yaxis.axis_label = plane.labels

    def _send_task(self, task) -> None:
        sources, fig = self.task_sources, self.task_fig
        if task.kind != self.task_kind:
            return
        if task.kind == "regions":
            sources["regions"].data = figures.image_data(task.xs, task.ys, task.values)
            fig.x_range.update(start=float(task.xs[0]), end=float(task.xs[-1]))
            fig.y_range.update(start=float(task.ys[0]), end=float(task.ys[-1]))
        elif task.kind == "field":
            sources["error"].data = figures.image_data(task.xs, task.ys, task.values)
            self.task_mapper.high = float(max(np.nanmax(task.values), 1e-6))
            step = (task.xs[-1] - task.xs[0]) / 15
            sources["true"].data = figures.arrows(task.grid, task.true, 0.9 * step)
            sources["learned"].data = figures.arrows(task.grid, task.learned, 0.9 * step)
            fig.x_range.update(start=float(task.xs[0]), end=float(task.xs[-1]))
            fig.y_range.update(start=float(task.ys[0]), end=float(task.ys[-1]))
        else:
            counts = task.values
            n = len(counts)
            sources["cells"].data = dict(
                predicted=[str(j) for i in range(n) for j in range(n)],
                true=[str(i) for i in range(n) for j in range(n)],
                count=counts.reshape(-1),
                label=[f"{c:.0f}" for c in counts.reshape(-1)],
            )
            self.task_mapper.high = float(max(counts.max(), 1))

    def _tracked_index(self, k: int) -> int:
        tracked = self.session.trainer.tracked
        return int(tracked[min(k, len(tracked) - 1)])

    def _request_phase(self) -> None:
        history = self.session.history
        k = min(self.phase_coordinate, history.n_tracked - 1)
        data = self.series.data
        theta = np.asarray(data[theta_column(k)], dtype=float)
        p = np.asarray(data[momentum_column(k)], dtype=float)
        ok = np.isfinite(theta) & np.isfinite(p)
        if not ok.any() or k >= len(self.session.trainer.tracked):
            return
        q_extent = _span(theta[ok])
        p_extent = _span(np.r_[p[ok], -p[ok]])
        self.session.request_phase(self._tracked_index(k), q_extent, p_extent)

    def _show_status(self) -> None:
        s = self.session.status()
        parts = [
            f"<b>t</b> {s['t']:.2f}",
            f"<b>epoch</b> {s['epoch']:.0f}",
            f"<b>train loss</b> {_fmt(s['train_loss'])}",
            f"<b>test loss</b> {_fmt(s['test_loss'])}",
        ]
        if not math.isnan(s["accuracy"]):
            parts.append(f"<b>accuracy</b> {s['accuracy']:.0%}")
        parts += [
            f"<b>H</b> {_fmt(s['hamiltonian'])}",
            f"<b>nfe</b> {s['nfe']}",
            f"<b>{_fmt_rate(s['steps_per_second'])}</b> steps/s",
            f"<b>{s['device']}</b>",
        ]
        self.status_text = f'<div class="phviz-status">{" · ".join(parts)}</div>'
        self.device_note.object = f"in use: **{s['device']}**"

    def _show_controls(self) -> None:
        playing = self.session.playing or self._pausing
        self.run_button.name = "Pause" if playing else "Run"
        self.run_button.button_type = "warning" if playing else "primary"
        notice = self.session.notice
        if notice is None and self.worker is not None and self.worker.error:
            notice = Notice(self.worker.error, "warning")
        if notice is None:
            self.banner.visible = False
        else:
            self.banner.object = notice.text
            self.banner.alert_type = notice.kind
            self.banner.visible = True


def _merged(old: Tick | None, new: Tick) -> Tick:
    """Two polls as one, for an update the page was not ready for: rows appended,
    a reset or rebuild in either kept."""
    if old is None or old.update is None or new.reset:
        if old is not None and old.rebuilt and not new.rebuilt:
            return Tick(new.update, new.records, new.reset, True)
        return new
    if new.update is None:
        return old
    rebuilt = old.update.rebuilt or new.update.rebuilt
    rows = {k: np.concatenate([old.update.rows[k], new.update.rows[k]]) for k in new.update.rows}
    update = type(new.update)(rows, rebuilt)
    return Tick(update, old.records + new.records, old.reset, old.rebuilt or new.rebuilt)


def _inline(columns: dict) -> dict:
    """A few rows as plain lists: Bokeh sends each NumPy column as a binary frame of
    its own, and dozens of tiny frames per tick cost the browser more than the data."""
    return {name: np.asarray(values, dtype=float).tolist() for name, values in columns.items()}


def _levels(values: np.ndarray, n: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.linspace(0, 1, n)
    lo, hi = float(finite.min()), float(finite.max())
    return np.linspace(lo, max(hi, lo + 1e-9), n)


def _span(values: np.ndarray, margin: float = 0.2) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = margin * max(hi - lo, 1e-3 * max(1.0, abs(hi)), 1e-3)
    return lo - pad, hi + pad


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.4g}"


def _fmt_rate(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.0f}"
