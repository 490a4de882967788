"""The explorer's Modes tab: the curvature spectrum by regime, and the run's motion
along its stiffest and flattest directions.

``ModesView`` belongs to one explorer session. Its figures are built when the tab is
first opened (most visits never open it) and fed only while the tab is shown, from
what the session's pictures published (``Shown.modes``, ``Shown.trace``: made on the
pool, never here) and the sidebar's gains of the moment. The density is redrawn when
a new spectrum comes or a gain changes, which only recolours it; the motion is
streamed row by row. The explorer calls ``send`` in its update, inside the page's
hold, so the view follows the same flow control as the live tab. What is drawn is
computed in ``modespresent``; the autopilot's buttons are ``autopilot.Autopilot``.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import BoxAnnotation, ColumnDataSource, HoverTool, Range1d, Span

from .. import colours
from . import figures
from . import modespresent as present
from .autopilot import Autopilot
from .helpview import helped

MOTION_COLOURS = ("#d62728", "#ff7f0e", "#8c564b", "#1f77b4", "#17becf", "#2ca02c")
INTRO = (
    "Near a minimum every direction of the Hessian is a damped oscillator of curvature "
    "μ = a·λ + c. <b>Left</b>: how many directions have each μ (log axes), coloured by "
    "what the damping B does to them now: "
    f'<b style="color:{present.REGIME_COLOURS["oscillating"]}">oscillating</b> above the '
    "dashed critical line μ = B²/4M, "
    f'<b style="color:{present.REGIME_COLOURS["creeping"]}">creeping</b> below it, '
    f'<b style="color:{present.REGIME_COLOURS["near critical"]}">near critical</b> close to it; '
    f'<b style="color:{present.REGIME_COLOURS["saddle"]}">saddles</b> (μ &lt; 0) apart. '
    "<b>Right</b>: how far the run moved along the stiffest and the flattest directions "
    "since the spectrum was taken: stiff ones ring, flat ones creep."
)


def _empty(*names: str) -> dict:
    return {name: [] for name in names}


BAR_COLUMNS = ("left", "right", "top", "bottom", "mu", "count", "regime", "color")


def density_figure(bars: ColumnDataSource, ritz: ColumnDataSource):
    """The log-log density of μ > 0 with the critical line and the near-critical band."""
    fig = figures.new_figure(
        "Curvature spectrum",
        "curvature μ = a·λ + c (log)",
        "directions (log)",
        x_axis_type="log",
        y_axis_type="log",
        x_range=Range1d(1e-3, 10.0),
        y_range=Range1d(present.FLOOR, 10.0),
    )
    fig.min_height = 380
    fig.quad("left", "right", "top", "bottom", source=bars, fill_color="color", line_color="white")
    fig.scatter("x", "y", source=ritz, marker="triangle", size=10, color="color", alpha=0.9)
    band = BoxAnnotation(fill_color=present.REGIME_COLOURS["near critical"], fill_alpha=0.12)
    line = Span(dimension="height", line_color="black", line_dash="dashed", line_width=3)
    line.location = 1.0
    fig.add_layout(band)
    fig.add_layout(line)
    fig.add_tools(
        HoverTool(
            renderers=[fig.renderers[0]],
            tooltips=[("μ", "@mu{0.000a}"), ("directions", "@count{0.00}"), ("", "@regime")],
        )
    )
    figures.styled(fig)
    return fig, line, band


def saddle_figure(saddles: ColumnDataSource):
    """The saddles' density over |μ| (log, reversed: more negative further left)."""
    fig = figures.new_figure(
        "μ < 0 (saddles)",
        "−μ (log; more negative to the left)",
        "directions (log)",
        x_axis_type="log",
        y_axis_type="log",
        x_range=Range1d(10.0, 1e-3),
        y_range=Range1d(present.FLOOR, 10.0),
    )
    fig.update(min_height=380, min_width=220)
    fig.quad(
        "left", "right", "top", "bottom", source=saddles, fill_color="color", line_color="white"
    )
    figures.styled(fig)
    fig.title.text_font_size = "16px"
    return fig


def motion_figure(title: str, source: ColumnDataSource, prefix: str):
    """Projections v·(θ(t) − θ(t_s)) of three vectors against t."""
    fig = figures.new_figure(title, "t", "v·(θ(t) − θ(t_s))")
    fig.min_height = 250
    offset = 0 if prefix == "s" else 3
    for i in range(3):
        fig.line(
            "t",
            f"{prefix}{i}",
            source=source,
            line_width=figures.LINE_WIDTH,
            color=MOTION_COLOURS[offset + i],
            line_dash="solid" if i == 0 else ("dashed" if i == 1 else "dotted"),
        )
    fig.add_layout(Span(location=0.0, dimension="width", line_color=colours.DISSIPATED))
    figures.styled(fig)
    fig.title.text_font_size = "16px"
    return fig


def motion_key(labels: list[tuple[str, str]], offset: int) -> str:
    """The motion plot's key as static HTML (a Bokeh legend on a streamed plot would
    restyle the page at every update)."""
    dashes = ("━━", "╍╍", "┈┈")
    items = [
        f'<span style="color:{MOTION_COLOURS[offset + i]}">{dashes[i]}</span> '
        f'<span style="color:{present.REGIME_COLOURS[regime]}">{text}</span>'
        for i, (text, regime) in enumerate(labels)
    ]
    return '<div class="phviz-modes-key">' + " &nbsp; ".join(items) + "</div>"


class ModesView:
    """The Modes tab of one session: figures, their feed, and the autopilot."""

    def __init__(self, session, settings):
        self.session = session
        self.settings = settings
        self.autopilot = Autopilot(session, settings)
        self.bars = ColumnDataSource(_empty(*BAR_COLUMNS), name="phviz-modes-density")
        self.saddles = ColumnDataSource(_empty(*BAR_COLUMNS), name="phviz-modes-saddles")
        self.ritz = ColumnDataSource(_empty("x", "y", "regime", "color"), name="phviz-modes-ritz")
        motion = ("t", *(f"{p}{i}" for p in "sf" for i in range(3)))
        self.motion = ColumnDataSource(_empty(*motion), name="phviz-modes-motion")
        self.active = False
        self.view: pn.Column | None = None
        self._sent_density = None
        self._sent_trace = None

    def panel(self) -> pn.Column:
        """The tab's contents (built once, when the tab is first opened)."""
        if self.view is not None:
            return self.view
        self.density_fig, self.line, self.band = density_figure(self.bars, self.ritz)
        self.saddle_fig = saddle_figure(self.saddles)
        self.stiff_fig = motion_figure("Stiffest directions: ring", self.motion, "s")
        self.flat_fig = motion_figure("Flattest directions: creep", self.motion, "f")
        key_style = {"font-size": "15px"}
        self.density_key = pn.pane.HTML(
            present.density_key(None), styles=key_style, sizing_mode="stretch_width"
        )
        self.stiff_key = pn.pane.HTML("", styles=key_style, margin=(0, 10))
        self.flat_key = pn.pane.HTML("", styles=key_style, margin=(0, 10))

        def pane(fig, **kw):
            return pn.pane.Bokeh(fig, **{"sizing_mode": "stretch_both", **kw})

        spectrum = helped(
            pn.Row(
                pane(self.saddle_fig, width=210, sizing_mode="stretch_height"),
                pane(self.density_fig),
                sizing_mode="stretch_both",
            ),
            "modes",
            height=440,
            sizing_mode="stretch_width",
        )
        motion = pn.Column(
            pane(self.stiff_fig, min_height=250),
            self.stiff_key,
            pane(self.flat_fig, min_height=250),
            self.flat_key,
            width=450,
            sizing_mode="stretch_height",
        )
        intro = pn.pane.HTML(INTRO, styles={"font-size": "15px"}, sizing_mode="stretch_width")
        left = pn.Column(
            spectrum, self.density_key, self.autopilot.panel(), sizing_mode="stretch_both"
        )
        self.view = pn.Column(
            intro,
            pn.Row(left, motion, sizing_mode="stretch_width", height=640),
            sizing_mode="stretch_width",
            css_classes=["phviz-modes"],
        )
        return self.view

    def follow(self, tabs: pn.Tabs, index: int) -> None:
        """Feed the figures while tab ``index`` of ``tabs`` is the one shown."""

        def shown(event) -> None:
            self.active = event.new == index
            if self.active:
                self._sent_density = self._sent_trace = None  # the tab's page gets all
                self._send_soon()

        tabs.param.watch(shown, "active")

    def _send_soon(self) -> None:
        """``send`` in the page's next tick: a browser's event (a tab chosen) runs
        without the document's lock, which Bokeh models need to change."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            self.send()  # no page: nothing else holds these models
            return

        def send() -> None:
            with pn.io.hold(doc):
                self.send()

        doc.add_next_tick_callback(send)

    # ------------------------------------------------------------ the feed
    def send(self) -> None:
        """What changed since the last call into the figures (nothing while the tab
        is not shown)."""
        if self.view is None or not self.active:
            return
        shown = self.session.shown
        picture = shown.modes if shown is not None else None
        if picture is None:
            if self._sent_density is not None:
                for source in (self.bars, self.saddles, self.ritz, self.motion):
                    source.data = {k: [] for k in source.data}
                self._sent_density = self._sent_trace = None
            return
        gains = present.Gains.of(self.settings)
        if (picture.version, gains) != self._sent_density:
            self._sent_density = (picture.version, gains)
            self._draw_density(picture, gains)
        trace = shown.trace
        if trace is not None and trace.version == picture.version:
            columns, grown, self._sent_trace = present.motion_update(trace, self._sent_trace)
            if grown and len(columns["t"]):
                self.motion.stream(columns)
            elif not grown:
                self.motion.data = columns

    def _draw_density(self, picture, gains: present.Gains) -> None:
        drawn = present.density(picture.spectrum, gains, picture.dim)
        self.bars.data = drawn.bars
        self.saddles.data = drawn.saddles
        self.ritz.data = drawn.ritz
        fig = self.density_fig
        fig.x_range.update(start=drawn.x_range[0], end=drawn.x_range[1])
        tops = [*drawn.bars["top"], *drawn.saddles["top"]]
        high = max(10.0, 2.0 * float(np.max(tops))) if tops else 10.0
        fig.y_range.end = high
        self.saddle_fig.y_range.end = high
        if len(drawn.saddles["left"]):
            low = float(np.min(drawn.saddles["left"]))
            top = float(np.max(drawn.saddles["right"]))
            self.saddle_fig.x_range.update(start=top * 2.0, end=low / 2.0)
        self.saddle_fig.title.text = present.saddle_title(drawn.saddle_share)
        fig.title.text = present.density_title(picture, gains)
        self.density_key.object = present.density_key(gains)
        critical = drawn.critical
        self.line.visible = self.band.visible = critical > 0
        if critical > 0:
            self.line.location = critical
            self.band.left, self.band.right = present.near_critical(gains)
        count = len(picture.spectrum.vector_values)
        stiff, flat = present.ends(count)
        self.stiff_key.object = motion_key(present.mode_labels(picture, gains, stiff), 0)
        flat_labels = present.mode_labels(picture, gains, flat)
        self.flat_key.object = motion_key(flat_labels, 3)
        saddles = all(regime == "saddle" for _, regime in flat_labels)
        self.flat_fig.title.text = (
            "Flattest directions: saddles, run away" if saddles else "Flattest directions: creep"
        )
