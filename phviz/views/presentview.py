"""The presenter view: the explorer for a projector, read from the back of a room.

``present=1`` in the link lays the page out without the sidebar (the run's buttons
come over the plots) and makes every figure's text and lines larger: on a 1280×720
projector the normal sizes are a few pixels tall from twenty metres.
"""

from __future__ import annotations

from bokeh.models import GlyphRenderer

# Text sizes for a projector (the normal view's are 18, 17, 15 and 15 px).
TITLE = "19px"
AXIS_LABEL = "21px"
TICKS = "19px"
LEGEND = "19px"
COLOUR_BAR = "17px"
STATUS = "24px"
KEY = "19px"
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


def present(plots, status, lessons) -> None:
    """Restyle an explorer's ``plots``, its ``status`` line (a ``FrameClock``) and its
    ``lessons`` pane for a projector; task figures made later (a new data set) are
    restyled as they come."""
    for fig in (*plots.timeline, plots.phase_fig, plots.landscape_fig):
        styled_for_projector(fig)
    plots.styles.append(styled_for_projector)
    if plots.task_fig is not None:
        styled_for_projector(plots.task_fig)
    status.styles = {**status.styles, "font-size": STATUS}
    status.height = 74  # two lines at this size on 1280 pixels
    lessons.make_compact()
    if plots.key is not None:
        plots.key.styles = {**plots.key.styles, "font-size": KEY}
