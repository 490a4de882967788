"""How to read the explorer, on the page: an info icon by each plot.

Each plot's pane gets a small icon in its top-left corner (Panel's ``TooltipIcon``);
hovering over it shows the plot's text from ``help.PLOTS``, and a tap or click keeps
it open until the next tap elsewhere, so it reads on a touch screen too. The texts
themselves are plain strings in ``help.py``; the status line's terms carry theirs as
hover titles (``presenter.status_line``).
"""

from __future__ import annotations

import panel as pn
from bokeh.models import Tooltip

from . import help

# The tooltip's box: wide enough for a paragraph, in type a projector can show.
TOOLTIP_CSS = """
:host { max-width: min(420px, 90vw); }
.bk-tooltip-content { white-space: normal; font-size: 15px; line-height: 1.4; }
"""


def info_icon(name: str) -> pn.widgets.TooltipIcon:
    """An icon whose tooltip says how to read the plot called ``name`` (``help.PLOTS``)."""
    return pn.widgets.TooltipIcon(
        value=_tooltip(help.plot_help(name)),
        width=22,
        height=22,
        margin=0,
        css_classes=["phviz-info", f"phviz-info-{name}"],
        styles={"position": "absolute", "top": "2px", "left": "4px", "z-index": "10"},
    )


def set_text(icon: pn.widgets.TooltipIcon, name: str) -> None:
    """The icon now explains the plot called ``name`` (a task figure was swapped)."""
    icon.value = _tooltip(help.plot_help(name))


def helped(pane, name: str, **params) -> pn.Column:
    """``pane`` with the info icon for ``name`` over its top-left corner; the icon is
    the column's ``icon`` attribute. ``params`` size the column."""
    icon = info_icon(name)
    params.setdefault("sizing_mode", "stretch_both")
    column = pn.Column(
        pane,
        icon,
        margin=0,
        styles={"position": "relative"},
        css_classes=["phviz-plot", f"phviz-plot-{name}"],
        **params,
    )
    column.icon = icon
    return column


def _tooltip(text: str) -> Tooltip:
    return Tooltip(content=text, position="bottom", stylesheets=[TOOLTIP_CSS])
