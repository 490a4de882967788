"""The gap curve under the landscape: does the drawn surface tell the truth?

A landscape is a slice through a space of many dimensions; the path drawn on it is
the weights' projection onto that slice. Along the path this plot draws, against
time t, the potential the weights really had (solid) and the drawn surface's value
right under the path (dashed): where the two lie on each other the picture is
faithful, where they part the path runs through directions the slice does not show.
The curves come from the pictures' ``ProfilePicture`` (made on the worker pool with
the landscape) through ``presenter.profile_columns``; this module only draws.
"""

from __future__ import annotations

from bokeh.models import ColumnDataSource, HoverTool, Range1d

from .. import colours
from . import figures

TITLE = "True V (solid) vs surface (dashed)"
SURFACE_COLOUR = "#555555"
GAP_COLOUR = "#d62728"


def profile_source() -> ColumnDataSource:
    return ColumnDataSource(dict(t=[], actual=[], surface=[], gap=[]))


def profile_figure(source: ColumnDataSource):
    """The potential along the path against the surface's under it, the gap between
    them shaded, on ranges the feed sets (``figures.sticky_range``)."""
    fig = figures.new_figure(
        TITLE, "time t", "potential V", x_range=Range1d(0, 1), y_range=Range1d(0, 1)
    )
    fig.min_height = 160
    fig.varea("t", "actual", "surface", source=source, fill_color=GAP_COLOUR, fill_alpha=0.25)
    true = fig.line(
        "t", "actual", source=source, color=colours.POTENTIAL, line_width=figures.LINE_WIDTH
    )
    fig.line(
        "t",
        "surface",
        source=source,
        color=SURFACE_COLOUR,
        line_width=figures.LINE_WIDTH,
        line_dash="dashed",
    )
    fig.add_tools(
        HoverTool(
            renderers=[true],
            tooltips=[
                ("t", "@t{0.00}"),
                ("true V", "@actual{0.0000}"),
                ("surface", "@surface{0.0000}"),
                ("gap", "@gap{0.0000}"),
            ],
            mode="vline",
        )
    )
    fig = figures.styled(fig)
    fig.title.text_font_size = "15px"
    return fig
