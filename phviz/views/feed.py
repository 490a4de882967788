"""What one update puts into the page: new rows, ranges, pictures and notes.

``PlotFeed`` takes a session's ``Tick`` and its published ``Shown`` and puts what
changed into the Bokeh sources of the page's ``Plots``, remembering which version of
each picture the page holds, so an idle page is sent nothing. It reads the session's
history and run facts; it never touches the trainer or the pictures' maker.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import figures, firstview, helpview, presenter
from .intake import Tick
from .layout import Plots

NOTHING_SENT = {
    "landscape": -1,
    "trail": -1,
    "profile": -1,
    "task": -1,
    "phase": -1,
    "stiffness": -1,
}


class PlotFeed:
    """Sends a session's news into ``plots``; ``damping_note`` is the pane under the
    damping slider, ``decorate(fig)`` adds layers to every new task figure."""

    def __init__(self, plots: Plots, damping_note, decorate: Callable | None = None):
        self.plots = plots
        self.damping_note = damping_note
        self.decorate = decorate
        self.phase_coordinate = 0  # the tracked coordinate the phase portrait shows
        self.sent = dict(NOTHING_SENT)  # the version of each picture the page holds
        self._task_fig_new = False

    def forget(self, *kinds: str) -> None:
        """The page must be sent these pictures again (all with no ``kinds``)."""
        if "landscape" in kinds:  # a new plane: its gap curve is another one too
            kinds = (*kinds, "profile")
        for kind in kinds or NOTHING_SENT:
            self.sent[kind] = -1

    def has_news(self, tick: Tick | None, shown, damping: float) -> bool:
        return presenter.has_news(tick, shown, self.sent, damping)

    def phase_k(self, session) -> int:
        """The tracked coordinate the phase portrait shows."""
        return min(self.phase_coordinate, session.history.n_tracked - 1)

    def show_phase_coordinate(self, session) -> None:
        """The phase portrait follows another tracked coordinate."""
        plots = self.plots
        figures.show_phase_coordinate(plots.phase_path, plots.phase_dot, self.phase_k(session))
        plots.phase_lines.data = dict(x=[], y=[])
        self.forget("phase")

    # ------------------------------------------------------------ one update
    def send(self, tick: Tick, session, *, pictures: bool, damping: float) -> None:
        """Put ``tick`` into the plots; with ``pictures``, the pictures and notes too
        (a page's first update carries the numbers and curves only)."""
        if pictures and (tick.rebuilt or self.plots.task_kind is None):
            self.new_task_figure(session.run)
        if tick.reset:
            self.forget()
        self._stream(tick, session)
        if pictures:
            self._send_pictures(session)
            self._show_stiffness(session.shown, damping)

    def new_task_figure(self, run) -> None:
        fig = self.plots.new_task_figure(run.dataset, run.task_kind)
        if self.decorate is not None:
            self.decorate(fig, run.task_kind)
        self.plots.task_pane.object = fig
        if "task" in self.plots.panes:  # its info icon explains the new kind of picture
            helpview.set_text(self.plots.panes["task"].icon, run.task_kind)
        # A figure swapped into the page takes changes from the next message on: the
        # browser drops those that arrive with the swap itself.
        self.forget("task")
        self._task_fig_new = True

    def _stream(self, tick: Tick, session) -> None:
        plots, history = self.plots, session.history
        if tick.reset or tick.update.rebuilt:
            plots.series.data = history.columns()
            firstview.show_start(plots.start, plots.series.data, history.n_tracked)
        elif len(tick.update):
            plots.series.stream(presenter.inline(tick.update.rows))
        self._fit_ranges(session)
        head = presenter.head(history.last, self.phase_k(session))
        if head is not None:
            plots.phase_head.data = head

    def _fit_ranges(self, session) -> None:
        plots = self.plots
        data = plots.series.data
        energy, thetas, momenta = plots.timeline
        t_range = presenter.time_range(data["t"], energy.x_range.end)
        if t_range is None and not len(data["t"]):
            return
        if t_range is not None:
            energy.x_range.update(start=t_range[0], end=t_range[1])
        n_tracked = session.history.n_tracked
        values = presenter.curve_values(data, n_tracked, self.phase_k(session))
        values = {k: firstview.readable(v, log=k == "energy") for k, v in values.items()}
        figures.sticky_range(energy.y_range, values["energy"], log=True)
        figures.sticky_range(thetas.y_range, values["theta"])
        figures.sticky_range(momenta.y_range, values["momentum"])
        figures.sticky_range(plots.phase_fig.x_range, values["phase_q"])
        figures.sticky_range(plots.phase_fig.y_range, values["phase_p"])

    # ------------------------------------------------------------ pictures
    def _send_pictures(self, session) -> None:
        shown = session.shown
        if shown is None:
            return
        state = shown.landscape
        if state.plane is not None and state.version != self.sent["landscape"]:
            self.sent["landscape"] = state.version
            self._send_surface(presenter.surface(state))
        self._send_trail(presenter.trail(state, self.sent["trail"]))
        if state.plane is not None:  # the plane's share of the path changes as it grows
            title = presenter.landscape_title(state)
            if self.plots.landscape_fig.title.text != title:
                self.plots.landscape_fig.title.text = title
        self._send_profile(shown.profile)
        task = shown.task
        fresh, self._task_fig_new = self._task_fig_new, False
        if task is not None and task.version != self.sent["task"] and not fresh:
            self.sent["task"] = task.version
            if task.kind == self.plots.task_kind:
                self._send_task(presenter.task(task))
        k = self.phase_k(session)
        self._request_phase(session, k)
        phase = shown.phase
        if phase is not None and phase.version != self.sent["phase"]:
            self.sent["phase"] = phase.version
            if phase.index == _tracked_index(session, k):
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
        self.sent["trail"] = trail.sent
        plots.head.data = trail.head
        plots.trail_cmap["transform"].update(low=trail.t_range[0], high=trail.t_range[1])

    def _send_profile(self, picture) -> None:
        key = presenter.picture_key(picture)
        if key == self.sent["profile"]:
            return
        self.sent["profile"] = key
        plots = self.plots
        columns = presenter.profile_columns(picture)
        plots.profile.data = columns
        if len(columns["t"]):
            fig = plots.profile_fig
            figures.sticky_range(fig.x_range, columns["t"], pad=0.02, slack=1.5)
            values = np.concatenate([columns["actual"], columns["surface"]])
            figures.sticky_range(fig.y_range, values)

    def _send_task(self, view: presenter.TaskView) -> None:
        plots = self.plots
        for name, data in view.sources.items():
            plots.task_sources[name].data = data
        if view.high is not None:
            plots.task_mapper.high = view.high
        if view.x_range is not None:
            plots.task_fig.x_range.update(start=view.x_range[0], end=view.x_range[1])
            plots.task_fig.y_range.update(start=view.y_range[0], end=view.y_range[1])

    def _show_stiffness(self, shown, damping: float) -> None:
        estimate = shown.stiffness if shown is not None else None
        key = (estimate.version, float(damping)) if estimate is not None else -1
        if key == self.sent["stiffness"]:
            return
        self.sent["stiffness"] = key
        self.damping_note.object = presenter.damping_html(estimate, float(damping))

    def _request_phase(self, session, k: int) -> None:
        extent = presenter.phase_extent(self.plots.series.data, k)
        if extent is not None:  # the picture covers at least the axes' readable span
            extent = tuple(firstview.widened(*e) for e in extent)
        if extent is None or k >= len(session.run.tracked):
            return
        session.request_phase(_tracked_index(session, k), *extent)


def _tracked_index(session, k: int) -> int:
    tracked = session.run.tracked
    return int(tracked[min(k, len(tracked) - 1)])
