"""The presenter view: the explorer for a projector, read from the back of a room.

``present=1`` in the link lays the page out without the sidebar (the run's buttons
come over the plots) and makes every figure's text and lines larger: on a 1280×720
projector the normal sizes are a few pixels tall from twenty metres. The first row
of plots, the one on screen without scrolling, holds the energy plot and the two
plots the lesson shown asks the class to watch (``FOCUS``); the rest follow below.
"""

from __future__ import annotations

import panel as pn
from bokeh.models import GlyphRenderer

# Text sizes for a projector (the normal view's are 18, 17, 15 and 15 px).
TITLE = "19px"
AXIS_LABEL = "21px"
TICKS = "19px"
LEGEND = "19px"
COLOUR_BAR = "17px"
STATUS = "24px"
KEY = "19px"
FOCUS_HEIGHT = 430  # the first row's height: under the status line on a 720-pixel screen
TICKS_PER_AXIS = 4  # fewer, larger tick labels that do not run into each other
LINE_SCALE = 1.7  # thicker curves: a 3 px line blurs on a projector


def styled_for_projector(fig):
    """``fig`` with projector-sized text and thicker lines (in place; returns it)."""
    fig.title.text_font_size = TITLE
    for axis in fig.axis:
        axis.axis_label_text_font_size = AXIS_LABEL
        axis.major_label_text_font_size = TICKS
        axis.axis_line_width = 2
        axis.major_tick_line_width = 2
        if hasattr(axis.ticker, "desired_num_ticks"):
            axis.ticker.desired_num_ticks = TICKS_PER_AXIS
    for legend in fig.legend:
        legend.label_text_font_size = LEGEND
    for bar in fig.right:
        if hasattr(bar, "title_text_font_size"):
            bar.title_text_font_size = COLOUR_BAR
            bar.major_label_text_font_size = COLOUR_BAR
    fig.min_border_left = 80
    for renderer in fig.renderers:
        glyph = renderer.glyph if isinstance(renderer, GlyphRenderer) else None
        width = getattr(glyph, "line_width", None)
        if isinstance(width, int | float) and width >= 2 and hasattr(glyph, "size") is False:
            glyph.line_width = width * LINE_SCALE
    return fig


# The plots beside the energy plot in the first row, by the lesson whose text asks
# the class to watch them (by help name; see ``layout.live_tab``).
FOCUS = {
    "underdamped": ("momenta", "landscape"),
    "critical": ("parameters", "momenta"),
    "overdamped": ("landscape", "momenta"),
    "inertia-vs-gain": ("parameters", "momenta"),
    "minibatches": ("parameters", "landscape"),
    "weight-decay": ("parameters", "task"),
    "paper-blobs": ("task", "landscape"),
    "paper-duffing": ("task", "parameters"),
    "kick": ("landscape", "momenta"),
}
DEFAULT_FOCUS = ("landscape", "task")
ORDER = ("landscape", "task", "phase", "profile", "parameters", "momenta")


def focus(lesson: str | None) -> tuple[str, ...]:
    """The plots in the first row for ``lesson`` (None: no lesson): energy first."""
    return ("energy", *FOCUS.get(lesson, DEFAULT_FOCUS))


def arrange(plots, lesson: str | None) -> None:
    """The rows for a projector: ``focus(lesson)`` in the first, low enough to be on a
    720-pixel screen whole, and every other plot (the gap curve too) in the second."""
    panes = plots.panes
    if len(plots.rows) != 2 or not panes:
        return
    first = [name for name in focus(lesson) if name in panes]
    rest = [name for name in ORDER if name in panes and name not in first]
    (top, _), (bottom, _) = plots.rows
    top.height = FOCUS_HEIGHT
    for name in first:
        panes[name].min_height = None
    if "energy" in panes:  # its plot above its key, together within the row
        panes["energy"][0].min_height = 260
        panes["energy"][0][0].min_height = 260
    pairs = [rest[i : i + 2] for i in range(0, len(rest), 2)]  # two a row: titles fit
    below = pn.Column(
        *(
            pn.Row(*(panes[n] for n in pair), height=420, sizing_mode="stretch_width")
            for pair in pairs
        ),
        sizing_mode="stretch_width",
    )
    bottom.height = 420 * len(pairs) + 10
    plots.rows = [(top, [panes[n] for n in first]), (bottom, [below])]


def present(plots, status, lessons) -> None:
    """Restyle an explorer's ``plots``, its ``status`` line (a ``FrameClock``) and its
    ``lessons`` pane for a projector, the lesson's plots first; task figures made
    later (a new data set) are restyled as they come."""
    for fig in (*plots.timeline, plots.phase_fig, plots.landscape_fig, plots.profile_fig):
        styled_for_projector(fig)
    plots.styles.append(styled_for_projector)
    if plots.task_fig is not None:
        styled_for_projector(plots.task_fig)
    status.styles = {**status.styles, "font-size": STATUS}
    status.height = 74  # two lines at this size on 1280 pixels
    lessons.make_compact()
    if plots.key is not None:
        plots.key.styles = {**plots.key.styles, "font-size": KEY}
    arrange(plots, lessons.lesson)
