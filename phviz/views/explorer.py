"""The explorer: a sidebar of settings, run controls, and live linked plots.

``Explorer`` is a Panel ``Viewer`` that ties a ``Sidebar`` (sidebar.py), the page's
``Plots`` (layout.py) and one ``LiveSession`` per browser tab (settings → slices of
training and pictures on the process's worker pool → history) together. Each part
gets what it uses, never the explorer. A periodic callback drains the session and
hands what changed to a ``PlotFeed`` under ``pn.io.hold()``, only once the page has
drawn the previous update (``FrameClock``). Building a tab does no model work: the
page is sent at once, and the run's first record and pictures follow when the pool
has made them. Nothing here computes physics.
"""

from __future__ import annotations

import logging
import math
import time

import panel as pn
import param
from panel.io.callbacks import PeriodicCallback

from ..budget import Budget
from ..config import PRESETS, TrainingConfig, make_config
from ..data import dataset_defaults
from ..lessons import LESSONS, Lesson
from ..links import Link
from ..scheduler import Scheduler
from . import layout, presenter
from .clock import FrameClock, refresh_ms, share_allows, tick_period
from .exportview import ExportView
from .feed import PlotFeed
from .gainview import GainView
from .kick import KickControl
from .layergains import LayerGains
from .lessonview import LessonView
from .linkview import LinkView, problems_text, running_changes, settings_for
from .live import GAINS, REBUILD, SOLVER_SETTINGS, LiveSession, Notice, Tick
from .modesview import ModesView
from .owndata import OwnData
from .presentview import present
from .refusals import follow_refusals
from .runcontrols import RunControls
from .serving import release_callbacks, waker
from .sidebar import Sidebar

log = logging.getLogger(__name__)

SPEEDS = {"5 /s": 5, "10 /s": 10, "20 /s": 20, "40 /s": 40, "100 /s": 100, "fastest": 0}
PLANES = {
    "PCA of the path": "pca",
    "random (filter-normalised)": "random",
    "two parameters": "coordinates",
}
WATCHED = GAINS + SOLVER_SETTINGS + REBUILD


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
        session = self.session = LiveSession(
            self.settings,
            max_rate=self.speed or None,
            budget=budget,
            scheduler=scheduler,
            plane=self.plane,
            coordinates=(self.plane_x, self.plane_y),
        )
        self._loading = False
        self._pausing = False  # Pause was pressed; the session's last slice is ending
        self._unsent: Tick | None = None
        self._sent_at = -math.inf  # when the last update went out
        # The status line and the flow control travel in one message per update.
        self.clock = FrameClock(
            rendered=not live,  # without a page: as if drawn
            text='<div class="phviz-preparing">Preparing the run…</div>',
            # two lines: the line wraps between its terms on a narrow page, never cut
            height=54,
            sizing_mode="stretch_width",
            styles={"font-size": "19px", "line-height": "1.3"},
            margin=(5, 10),
        )
        self.status_text: str | None = None  # the status line's HTML last made
        self.buttons = RunControls(on_press=self.press)
        self.controls = Sidebar(
            self.settings,
            buttons=self.buttons,
            kick=KickControl(session.kick),
            speed=self.param.speed,
            preset=self.param.preset,
            plane=self.param.plane,
            plane_x=self.param.plane_x,
            plane_y=self.param.plane_y,
            phase_coordinate=self.param.phase_coordinate,
            on_new_sample=self.new_sample,
        )
        if live:  # a served page: take the figures built ahead for it
            self.plots = layout.spare_plots.take(session.scheduler, self.phase_coordinate)
        else:
            self.plots = layout.Plots(self.phase_coordinate)
        self.banner = layout.banner()
        self.gains = GainView(session, self.settings, self.plots.timeline[0])
        self.own_data = OwnData(session, on_notice=self.show_controls)
        self.feed = PlotFeed(self.plots, self.controls.damping_note, self.own_data.decorate)
        self.feed.phase_coordinate = self.phase_coordinate
        self.layer_gains = LayerGains(session, self.settings, on_notice=self.show_controls)
        self.lessons = LessonView(link.lesson, on_pick=self._open_lesson)
        self.exports = ExportView(session, self.settings)
        self.links = LinkView(link, self.settings, self.controls, self._setup)
        tools = pn.Row(self.links.button, *self.exports.widgets(), css_classes=["phviz-tools"])
        if self.presenting:  # no sidebar: the run's buttons come over the plots
            tools.objects = [self.buttons, *tools.objects]
        above = (self.lessons.pane, tools, self.links.field)
        live_tab = layout.live_tab(self.plots, self.banner, self.clock, *above)
        self.modes = ModesView(session, self.settings)
        self.layout = layout.tabs(live_tab, self.gains.map, ("Modes", self.modes.panel))
        self.modes.follow(self.layout, 2)
        self.settings.param.watch(self._on_settings, list(WATCHED))
        follow_refusals(self)  # a refused edit is told in this tab's banner
        self.clock.param.watch(lambda e: self.session.set_visible(e.new), "visible")
        # The page drew the last update: send the next at once, not at the next tick.
        self.clock.on_drawn = self.update_view
        self.clock.param.watch(lambda _: self.update_view(force=True), "rendered")
        self._callback = None
        self.links.hide(link.hide)
        if link.run:
            session.play()
        if (text := problems_text(link)) is not None:
            session.notice = Notice(text, "warning")
        if self.presenting:
            present(self.plots, self.clock, self.lessons)
        self.show_controls()
        if live:
            # A background callback: the updates are not user actions, so they neither
            # mark the page busy nor log a line each (both cost the server's thread).
            self._period = refresh_ms()  # the shortest; longer among many tabs
            self._callback = PeriodicCallback(
                callback=self.update_view, period=self._period, background=True, log=False
            )
            self._callback.start()
            pn.state.on_session_destroyed(self._destroyed)

    # ------------------------------------------------------------ lifetime
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

    def __panel__(self):
        return self.layout

    def close(self) -> None:
        """Stop this session's work and let go of what it holds."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.clock.on_drawn = None
        self.buttons.on_press = None
        self.gains.close()
        self.exports.close()
        self.session.close()
        release_callbacks(self.layout, *self.controls.all_widgets())

    def _destroyed(self, session_context) -> None:
        self.close()

    def _setup(self) -> dict:
        """What a link names besides the settings."""
        lesson = self.lessons.lesson if hasattr(self, "lessons") else None
        return dict(preset=self.preset, lesson=lesson, plane=self.plane, present=self.presenting)

    # ------------------------------------------------------------ actions
    def press(self, action: str) -> None:
        """A press of one of the run's buttons, as the page showed it: 'run', 'pause',
        'step' or 'reset'. What it asks for is done, whatever the run did meanwhile."""
        session = self.session
        if action == "run":
            self._pausing = False
            session.play()
        elif action == "pause":
            if session.playing:
                # The label turns to Run once the session has settled: the update
                # that says so goes out then, not at the next tick.
                session.pause(then=waker(self.update_view))
                self._pausing = True
        elif action == "step":
            session.step(1)
        elif action == "reset":
            session.reset()
        self.update_view(force=True)

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
        self.links.refresh()

    def _show_running(self, kept) -> None:
        """The sidebar shows the settings that run in place of those refused."""
        quiet, changes = running_changes(self.settings, kept, REBUILD)
        self._loading = True  # the data's and model's are the running trainer's
        try:
            self.settings.param.update(**quiet)
        finally:
            self._loading = False
        self.settings.param.update(**changes)  # the others reach the trainer as changes

    def _open_lesson(self, lesson: Lesson) -> None:
        reason = f"Opened the lesson '{lesson.title}': the run restarted at t = 0."
        self.load(lesson.config(), reason, preset=lesson.preset)
        self.plane = lesson.plane

    @param.depends("preset", watch=True)
    def _on_preset(self) -> None:
        if self._loading:  # a lesson set it
            return
        self.lessons.leave()
        self.load(
            make_config(self.preset),
            f"Loaded the preset '{self.preset}': the run restarted at t = 0.",
        )

    @param.depends("speed", watch=True)
    def _on_speed(self) -> None:
        self.session.set_speed(self.speed or None)

    @param.depends("plane", "plane_x", "plane_y", watch=True)
    def _on_plane(self) -> None:
        self.links.refresh()
        run = self.session.run
        if run is None:
            return
        if self.plane == "coordinates" and (
            max(self.plane_x, self.plane_y) >= run.dim or self.plane_x == self.plane_y
        ):
            self.session.notice = Notice(
                f"Invalid plane coordinates: ({self.plane_x}, {self.plane_y}); choose two "
                f"different indices below {run.dim}.",
                "warning",
            )
            return
        coordinates = (self.plane_x, self.plane_y)
        self.session.set_plane(self.plane, coordinates, presenter.path_points(self.session.history))
        self.feed.forget("landscape", "trail")

    @param.depends("sample_seed", watch=True)
    def _on_sample(self) -> None:
        self.session.set_tracked(self.sample_seed)
        self.feed.forget("phase")

    @param.depends("phase_coordinate", watch=True)
    def _on_phase_coordinate(self) -> None:
        self.feed.phase_coordinate = self.phase_coordinate
        if self.session.history is not None:
            self.feed.show_phase_coordinate(self.session)

    # ------------------------------------------------------------ the tick
    def update_view(self, force: bool = False) -> None:
        """Take what the session produced and, once the page has drawn the last update
        (or when ``force``d), send what changed; errors become the banner."""
        try:
            # Settled before this poll: the poll has every record there will be.
            settled = self._pausing and self.session.settled
            self._unsent = presenter.merged(self._unsent, self.session.poll())
            if (kept := self.session.take_kept()) is not None:  # a build was refused
                self._show_running(kept)
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
            running = self.session.scheduler.busy()  # tabs that want work now
            due = self.clock.ready() and share_allows(self._sent_at, running)
            if not (force or settled or due):
                return
            news = self.feed.has_news(self._unsent, self.session.shown, self.settings.damping)
            news = news or (self.clock.sent > 0 and not self.plots.shown)
            if not (force or settled or news):
                self.show_controls()  # a notice may have changed; nothing else did
                return
            self._send(settled)
        except Exception as err:  # never a traceback in the page
            log.exception("explorer update")
            self.session.notice = Notice(f"The view could not be updated: {err}", "danger")
            self.show_controls()

    def _send(self, settled: bool) -> None:
        tick, self._unsent = self._unsent, None
        # The page's first update carries the numbers and curves only, so the page is
        # usable at once; the pictures follow in the next.
        first = self.clock.sent == 0
        with pn.io.hold():
            if not first:
                self.plots.show()
            damping = self.settings.damping
            self.feed.send(tick, self.session, pictures=not first, damping=damping)
            if not first:
                self.modes.send()
            status = self.session.status()
            self.status_text = presenter.status_line(status)
            self.controls.device_note.object = presenter.device_note(status)
            if not settled:
                self.show_controls()
        self.clock.tick(self.status_text)  # after the update has gone out
        if settled:  # Run shows last: once it does, nothing on the page changes
            self.show_controls()
        self._sent_at = time.monotonic()
        self._retime()

    def _retime(self) -> None:
        if self._callback is not None:
            running = self.session.scheduler.busy()
            self._callback.period = tick_period(self._callback.period, running, self._period)

    def show_controls(self) -> None:
        """The Run button's label and the banner, as the session stands now (parts of
        the page that post a notice call it to show the notice at once)."""
        self.buttons.running = self.session.playing or self._pausing
        notice = self.session.notice
        shown = self.session.shown
        if notice is None and shown is not None and shown.error:
            notice = Notice(shown.error, "warning")
        if notice is None:
            self.banner.visible = False
        else:
            self.banner.object = notice.text
            self.banner.alert_type = notice.kind
            self.banner.visible = True
