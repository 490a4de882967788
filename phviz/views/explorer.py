"""The explorer: a sidebar of settings, run controls, and live linked plots.

``Explorer`` is a Panel ``Viewer`` that ties a ``Sidebar`` (sidebar.py), the page's
``Plots`` (layout.py) and one ``LiveSession`` per browser tab (settings → slices of
training and pictures on the process's worker pool → history) together. A periodic
callback drains the session, turns what changed into plain data (presenter.py) and
puts it into the plots under ``pn.io.hold()``, only once the page has drawn the
previous update (``FrameClock``). Building a tab does no model work: the page is sent
at once, and the run's first record and pictures follow when the pool has made them.
Nothing here computes physics.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable

import panel as pn
import param
from panel.io.callbacks import PeriodicCallback

from ..budget import Budget
from ..config import PRESETS, TrainingConfig, make_config
from ..data import dataset_defaults
from ..lessons import LESSONS
from ..links import Link
from ..scheduler import Scheduler
from . import figures, firstview, layout, presenter
from .clock import FrameClock
from .exportview import ExportView
from .gainview import GainView
from .layergains import LayerGains
from .lessonview import LessonView
from .linkview import LinkView
from .live import GAINS, REBUILD, SOLVER_SETTINGS, LiveSession, Notice, Tick
from .owndata import OwnData
from .presentview import present
from .sidebar import Sidebar

log = logging.getLogger(__name__)

SPEEDS = {"5 /s": 5, "10 /s": 10, "20 /s": 20, "40 /s": 40, "100 /s": 100, "fastest": 0}
PLANES = {
    "PCA of the path": "pca",
    "random (filter-normalised)": "random",
    "two parameters": "coordinates",
}
WATCHED = GAINS + SOLVER_SETTINGS + REBUILD
# The periodic callback's shortest period: at most 12.5 updates a second, fewer when
# the page has not drawn the last one yet (FrameClock), longer among many tabs.
TICK_SECONDS = 0.08
# Updates a second that one server process sends, all running tabs together, once
# there are more tabs than that allows at the full rate: every update costs the
# server's one thread (and a browser on the same machine) milliseconds that training
# could use, and a tab among many needs its curves no smoother than a few times a
# second.
SERVER_UPDATES_PER_SECOND = 25.0
NOTHING_SENT = {"landscape": -1, "trail": -1, "task": -1, "phase": -1, "stiffness": -1}


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


def settings_for(preset: str | TrainingConfig) -> TrainingConfig:
    """A preset (or a config) with the data set's own size, noise and split filled in
    (widgets need numbers, not None)."""
    config = make_config(preset) if isinstance(preset, str) else preset
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
        link: Link | None = None,
        **params,
    ):
        link = link if link is not None else Link()
        preset = LESSONS[link.lesson].preset if link.lesson else link.preset
        params = {"preset": preset, **({"plane": link.plane} if link.plane else {}), **params}
        super().__init__(**params)
        if config is None:
            config = settings_for(link.config() if link.lesson or link.settings else self.preset)
        self.settings = config
        self.presenting = link.present
        self.session = LiveSession(
            self.settings,
            max_rate=self.speed or None,
            budget=budget,
            scheduler=scheduler,
            plane=self.plane,
            coordinates=(self.plane_x, self.plane_y),
        )
        self._task_fig_new = False
        self._loading = False
        self._pausing = False  # Pause was pressed; the session's last slice is ending
        self._sent = dict(NOTHING_SENT)  # what the page holds of each picture
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
        self.controls = Sidebar(self)
        if live:  # a served page: take the figures built ahead for it
            self.plots = layout.spare_plots.take(self.session.scheduler, self.phase_coordinate)
        else:
            self.plots = layout.Plots(self.phase_coordinate)
        self.banner = layout.banner()
        self.gains = GainView(self, self.plots.timeline[0])
        self.own_data = OwnData(self)
        self.layer_gains = LayerGains(self)
        self.lessons = LessonView(self, link.lesson)
        self.exports = ExportView(self)
        self.links = LinkView(self, link)
        # The gain map is put in its tab when the tab is first opened: drawing it costs
        # every page a second, and most visits never open it.
        self._map_tab = pn.Column(sizing_mode="stretch_width")
        tools = pn.Row(self.links.button, *self.exports.widgets(), css_classes=["phviz-tools"])
        if self.presenting:
            c = self.controls  # no sidebar: the run's buttons come over the plots
            tools.objects = [c.run_button, c.step_button, c.reset_button, *tools.objects]
        above = (self.lessons.pane, tools, self.links.field)
        live_tab = layout.live_tab(self.plots, self.banner, self.clock, *above)
        self.layout = layout.tabs(live_tab, self._map_tab)
        self.layout.param.watch(self._on_tab, "active")
        self.settings.param.watch(self._on_settings, list(WATCHED))
        self.clock.param.watch(lambda e: self.session.set_visible(e.new), "visible")
        # The page drew the last update: send the next at once, not at the next tick.
        self.clock.on_drawn = self.update_view
        self.clock.param.watch(lambda _: self.update_view(force=True), "rendered")
        self._callback = None
        self.links.apply()
        if self.presenting:
            present(self)
        self.show_controls()
        if live:
            # A background callback: the updates are not user actions, so they neither
            # mark the page busy nor log a line each (both cost the server's thread).
            self._period = refresh_ms()  # the shortest; longer among many tabs (_retime)
            self._callback = PeriodicCallback(
                callback=self.update_view, period=self._period, background=True, log=False
            )
            self._callback.start()
            pn.state.on_session_destroyed(self._destroyed)

    # ------------------------------------------------------------ lifetime
    @property
    def worker(self):
        """The session's pictures (None until the first build)."""
        return self.session.pictures

    @property
    def task_kind(self) -> str | None:
        """The kind of task picture on the page (None before the first)."""
        return self.plots.task_kind

    def sidebar(self) -> list | None:
        """The sidebar's contents, for a template's sidebar (None in the presenter view)."""
        if self.presenting:
            return None
        gains = [*self.layer_gains.panels(), *self.gains.sidebar()]
        panels = self.controls.panels(gains, self.lessons.sidebar(), data=self.own_data.panels())
        self.links.hide(self.links.hidden)  # the sections a link hides exist now
        return panels

    @property
    def loading(self) -> bool:
        """Settings are being loaded at once (a preset or a lesson)."""
        return self._loading

    def __panel__(self):
        return self.layout

    def close(self) -> None:
        """Stop this session's work."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.gains.close()
        self.exports.close()
        self.session.close()

    def _on_tab(self, event) -> None:
        if event.new == 1 and not len(self._map_tab):
            self._map_tab.append(self.gains.map)

    def _destroyed(self, session_context) -> None:
        self.close()

    # ------------------------------------------------------------ actions
    def run_or_pause(self) -> None:
        """Run, or pause a running session (the Run/Pause button)."""
        if self._pausing:
            return  # a click while the last slice ends: the pause stands
        if self.session.playing:
            # The label turns to Run once the session has settled: the update that
            # says so goes out then, not at the next tick.
            self.session.pause(then=self._wake())
            self._pausing = True
        else:
            self.session.play()
        self.update_view(force=True)

    def _wake(self) -> Callable[[], None] | None:
        """A function any thread may call to have ``update_view`` run soon on this
        page's server thread (None without a page)."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return None

        def wake() -> None:
            with contextlib.suppress(Exception):  # the tab has closed meanwhile
                doc.add_next_tick_callback(self.update_view)

        return wake

    def step(self) -> None:
        """One switching interval (the Step button)."""
        self.session.step(1)
        self.show_controls()

    def reset(self) -> None:
        """Back to t = 0 with the same settings (the Reset button)."""
        self.session.reset()
        self.show_controls()

    def new_sample(self) -> None:
        """Track another random sample of θ's coordinates."""
        self.sample_seed += 1

    # ------------------------------------------------------------ events
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

    def load(self, config: TrainingConfig, reason: str, *, preset: str | None = None) -> None:
        """A whole set-up at once (a preset or a lesson): the sidebar shows it and the
        run is rebuilt once."""
        fresh = settings_for(config)
        self._loading = True
        try:
            if preset is not None:
                self.preset = preset
            self.settings.param.update(**fresh.values())
        finally:
            self._loading = False
        self.session.data = None  # a preset or a lesson names its data set
        self.session.rebuild(reason)

    @param.depends("preset", watch=True)
    def _on_preset(self) -> None:
        if self._loading:
            return
        self.load(
            make_config(self.preset),
            f"Loaded the preset '{self.preset}': the run restarted at t = 0.",
        )

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
        self.session.set_plane(self.plane, coordinates, presenter.path_points(self.session.history))
        self._sent.update(landscape=-1, trail=-1)

    @param.depends("sample_seed", watch=True)
    def _on_sample(self) -> None:
        self.session.set_tracked(self.sample_seed)
        self._sent["phase"] = -1

    @param.depends("phase_coordinate", watch=True)
    def _on_phase_coordinate(self) -> None:
        if self.session.history is None:
            return
        plots = self.plots
        figures.show_phase_coordinate(plots.phase_path, plots.phase_dot, self._phase_k())
        plots.phase_lines.data = dict(x=[], y=[])
        self._sent["phase"] = -1

    # ------------------------------------------------------------ the tick
    def update_view(self, force: bool = False) -> None:
        """Take what the session produced and, once the page has drawn the last update
        (or when ``force``d), send what changed; errors become the banner."""
        try:
            # Settled before this poll: the poll has every record there will be.
            settled = self._pausing and self.session.settled
            self._unsent = presenter.merged(self._unsent, self.session.poll())
            self.gains.update()
            self.own_data.update()
            self.layer_gains.update()
            self.exports.sync()
            if settled:  # the last records go out now, and the label Run after them
                self._pausing = False
            if not self.session.ready:
                self.show_controls()
                return
            if not self.clock.rendered:
                return  # the page is still connecting: what went out now could be lost
            if not (force or settled or (self.clock.ready() and self._due())):
                return
            news = presenter.has_news(self._unsent, self.worker, self._sent, self.settings.damping)
            news = news or (self.clock.sent > 0 and not self.plots.shown)
            if not (force or settled or news):
                self.show_controls()  # a notice may have changed; nothing else did
                return
            tick, self._unsent = self._unsent, None
            # The page's first update carries the numbers and curves only, so the page
            # is usable at once; the pictures follow in the next.
            first = self.clock.sent == 0
            with pn.io.hold():
                if not first:
                    self.plots.show()
                if not first and (tick.rebuilt or self.plots.task_kind is None):
                    self._new_task_figure()
                if tick.reset:
                    self._sent.update(NOTHING_SENT)
                self._stream(tick)
                if not first:
                    self._send_pictures()
                    self._show_stiffness()
                self._show_status()
                if not settled:
                    self.show_controls()
            self.clock.tick(self.status_text)  # after the update has gone out
            if settled:  # Run shows last: once it does, nothing on the page changes
                self.show_controls()
            self._sent_at = time.monotonic()
            self._retime()
        except Exception as err:  # never a traceback in the page
            log.exception("explorer update")
            self.session.notice = Notice(f"The view could not be updated: {err}", "danger")
            self.show_controls()

    def _retime(self) -> None:
        """Tick about twice per update this tab's share allows, not more often. Twenty
        tabs ticking 12.5 times a second kept the server's thread busy with ticks that
        found nothing due, and a click waited behind them: each step of reading it
        waits for the callbacks due before it."""
        if self._callback is None:
            return
        scheduler = self.session.scheduler
        share = scheduler.busy() / SERVER_UPDATES_PER_SECOND
        period = max(self._period, round(500 * share))
        if abs(period - self._callback.period) > 0.25 * self._callback.period:
            self._callback.period = period  # restarts the callback

    def _due(self) -> bool:
        """Whether this tab's share of the server's updates allows one now: the full
        rate with a few running tabs, ``SERVER_UPDATES_PER_SECOND`` shared with many."""
        scheduler = self.session.scheduler
        running = scheduler.busy()  # tabs that want work now
        interval = running / SERVER_UPDATES_PER_SECOND
        return time.monotonic() - self._sent_at >= interval

    def _phase_k(self) -> int:
        """The tracked coordinate the phase portrait shows."""
        return min(self.phase_coordinate, self.session.history.n_tracked - 1)

    def _new_task_figure(self) -> None:
        fig = self.plots.new_task_figure(self.session.trainer)
        self.own_data.decorate(fig)
        self.plots.task_pane.object = fig
        # A figure swapped into the page takes changes from the next message on: the
        # browser drops those that arrive with the swap itself.
        self._sent["task"] = -1
        self._task_fig_new = True

    def _stream(self, tick) -> None:
        plots, history = self.plots, self.session.history
        if tick.reset or tick.update.rebuilt:
            plots.series.data = history.columns()
            firstview.show_start(plots.start, plots.series.data, history.n_tracked)
        elif len(tick.update):
            plots.series.stream(presenter.inline(tick.update.rows))
        self._fit_ranges()
        head = presenter.head(history.last, self._phase_k())
        if head is not None:
            plots.phase_head.data = head

    def _fit_ranges(self) -> None:
        plots = self.plots
        data = plots.series.data
        energy, thetas, momenta = plots.timeline
        t_range = presenter.time_range(data["t"], energy.x_range.end)
        if t_range is None and not len(data["t"]):
            return
        if t_range is not None:
            energy.x_range.update(start=t_range[0], end=t_range[1])
        values = presenter.curve_values(data, self.session.history.n_tracked, self._phase_k())
        values = {k: firstview.readable(v, log=k == "energy") for k, v in values.items()}
        figures.sticky_range(energy.y_range, values["energy"], log=True)
        figures.sticky_range(thetas.y_range, values["theta"])
        figures.sticky_range(momenta.y_range, values["momentum"])
        figures.sticky_range(plots.phase_fig.x_range, values["phase_q"])
        figures.sticky_range(plots.phase_fig.y_range, values["phase_p"])

    def _send_pictures(self) -> None:
        pictures = self.worker
        if pictures is None:
            return
        state = pictures.window.state
        if state.plane is not None and state.version != self._sent["landscape"]:
            self._sent["landscape"] = state.version
            self._send_surface(presenter.surface(state))
        self._send_trail(presenter.trail(state, self._sent["trail"]))
        task = pictures.task
        fresh, self._task_fig_new = self._task_fig_new, False
        if task is not None and task.version != self._sent["task"] and not fresh:
            self._sent["task"] = task.version
            if task.kind == self.plots.task_kind:
                self._send_task(presenter.task(task))
        self._request_phase()
        phase = pictures.phase
        if phase is not None and phase.version != self._sent["phase"]:
            self._sent["phase"] = phase.version
            k = self._phase_k()
            if phase.index == self._tracked_index(k):
                self.plots.phase_lines.data = presenter.phase_contours(phase)
                self.plots.phase_fig.title.text = presenter.phase_title(phase, k)

    def _send_surface(self, surface: presenter.Surface) -> None:
        plots = self.plots
        plots.landscape_mapper.update(low=surface.low, high=surface.high)
        plots.surface.data = surface.image
        plots.surface_lines.data = surface.lines
        fig = plots.landscape_fig
        fig.x_range.update(start=surface.x_range[0], end=surface.x_range[1])
        fig.y_range.update(start=surface.y_range[0], end=surface.y_range[1])
        fig.title.text = surface.title
        fig.xaxis.axis_label, fig.yaxis.axis_label = surface.labels

    def _send_trail(self, trail: presenter.Trail | None) -> None:
        if trail is None:
            return
        plots = self.plots
        if trail.grown:
            plots.trail.stream(trail.columns)
        else:
            plots.trail.data = trail.columns
        self._sent["trail"] = trail.sent
        plots.head.data = trail.head
        plots.trail_cmap["transform"].update(low=trail.t_range[0], high=trail.t_range[1])

    def _send_task(self, view: presenter.TaskView) -> None:
        plots = self.plots
        for name, data in view.sources.items():
            plots.task_sources[name].data = data
        if view.high is not None:
            plots.task_mapper.high = view.high
        if view.x_range is not None:
            plots.task_fig.x_range.update(start=view.x_range[0], end=view.x_range[1])
            plots.task_fig.y_range.update(start=view.y_range[0], end=view.y_range[1])

    def _show_stiffness(self) -> None:
        estimate = self.worker.stiffness if self.worker is not None else None
        damping = float(self.settings.damping)
        key = (estimate.version, damping) if estimate is not None else -1
        if key == self._sent["stiffness"]:
            return
        self._sent["stiffness"] = key
        self.controls.damping_note.object = presenter.damping_html(estimate, damping)

    def _tracked_index(self, k: int) -> int:
        tracked = self.session.trainer.tracked
        return int(tracked[min(k, len(tracked) - 1)])

    def _request_phase(self) -> None:
        k = self._phase_k()
        extent = presenter.phase_extent(self.plots.series.data, k)
        if extent is not None:  # the picture covers at least the axes' readable span
            extent = tuple(firstview.widened(*e) for e in extent)
        if extent is None or k >= len(self.session.trainer.tracked):
            return
        self.session.request_phase(self._tracked_index(k), *extent)

    def _show_status(self) -> None:
        status = self.session.status()
        self.status_text = presenter.status_line(status)
        self.controls.device_note.object = presenter.device_note(status)

    def show_controls(self) -> None:
        """The Run button's label and the banner, as the session stands now (parts of
        the page that post a notice call it to show the notice at once)."""
        button = self.controls.run_button
        button.name, button.button_type = presenter.run_button(
            self.session.playing or self._pausing
        )
        notice = self.session.notice
        if notice is None and self.worker is not None and self.worker.error:
            notice = Notice(self.worker.error, "warning")
        if notice is None:
            self.banner.visible = False
        else:
            self.banner.object = notice.text
            self.banner.alert_type = notice.kind
            self.banner.visible = True
