"""Bokeh figures of the explorer, each fed by ColumnDataSources it owns.

Live plots are Bokeh figures whose sources are streamed (``source.stream``: only new
rows travel) or replaced whole at a low rate (pictures): building HoloViews elements
anew on every tick is far too slow for several updates a second (``python -m
phviz.bench explorer`` measures both). Static layers (data points, the true field)
have sources that are set once per data set.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import (
    BasicTicker,
    BasicTickFormatter,
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Blues256, Plasma256, Reds256
from bokeh.plotting import figure
from bokeh.transform import linear_cmap

from .. import colours
from .history import momentum_column, theta_column

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
LINE_WIDTH = 3

# Two BokehJS habits make a streaming page restyle itself many times a frame. Every
# renderer rewrites its inline stylesheet (its position) on every paint, even with the
# same text; and a glyph's position follows its data's extent, so a streamed line
# rewrites it with every new row. Each rewrite makes BokehJS's next computed-style read
# (axes, titles and grids read colours and fonts through CSS variables) restyle the
# whole document, for every axis on every paint. Glyphs draw on the plot's canvas and
# their element is an empty box, so it is placed once; identical rewrites are skipped
# (python -m phviz.bench serve shows the frames). Idempotent; runs on the first draw.
CALM_STYLES_JS = """
(() => {
  if (!window.Bokeh || window._phviz_calm_styles) return;
  window._phviz_calm_styles = true;
  const sheet = Bokeh.require("core/dom").InlineStyleSheet.prototype;
  const update = sheet._update;
  sheet._update = function (css) {
    if (this.el.textContent !== css) update.call(this, css);
  };
  const glyph = Bokeh.require("models/renderers/glyph_renderer").GlyphRendererView.prototype;
  const place = glyph.update_position;
  glyph.update_position = function () {
    if (!this._phviz_placed) place.call(this);
    this._phviz_placed = true;
  };
})();
"""

LANDSCAPE_LEVELS = 14


def styled(fig):
    """Projector-readable text and thick outlines on every figure, and its renderers
    without the selected, unselected and muted copies of their glyphs that
    ``bokeh.plotting`` gives each one: nothing on these figures selects or mutes, and
    the copies were a third of the models each page builds, sends and loads."""
    for renderer in fig.renderers:
        renderer.update(selection_glyph=None, nonselection_glyph=None, muted_glyph=None)
    fig.title.text_font_size = "18px"
    fig.title.text_font_style = "bold"
    for axis in fig.axis:
        axis.axis_label_text_font_size = "17px"
        axis.axis_label_text_font_style = "normal"
        axis.major_label_text_font_size = "15px"
        if isinstance(axis.formatter, BasicTickFormatter):  # 0.002, not 2.000e-3
            axis.formatter = BasicTickFormatter(power_limit_low=-5)
    fig.toolbar.logo = None
    fig.min_border_left = 60
    if fig.legend:
        fig.legend.label_text_font_size = "15px"
        fig.legend.background_fill_alpha = 0.7
        fig.legend.click_policy = "hide"
    return fig


def new_figure(title: str, x_label: str, y_label: str, **kw):
    fig = figure(
        title=title,
        tools=TOOLS,
        sizing_mode="stretch_both",
        min_height=320,
        min_width=300,
        output_backend="canvas",
        **kw,
    )
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    return fig


# ------------------------------------------------------------------ time series
# (column, label, colour, dash) of the energy plot's curves.
ENERGY_LINES = (
    ("hamiltonian", "H", colours.HAMILTONIAN, "solid"),
    ("potential", "potential", colours.POTENTIAL, "solid"),
    ("kinetic", "kinetic", colours.KINETIC, "solid"),
    ("dissipated", "dissipated ∫vᵀBv dt", colours.DISSIPATED, "solid"),
    ("supplied", "supplied ∫vᵀu dt (kicks)", colours.SUPPLIED, "solid"),
    ("residual", "|ledger residual|", colours.RESIDUAL, "dashed"),
    ("gain_jumps", "|gain-change jumps|", colours.HAMILTONIAN, "dotted"),
)


def energy_key() -> str:
    """The energy plot's legend as static HTML, drawn once beside the plot.

    BokehJS rebuilds a legend's DOM (a canvas per entry) whenever its renderers' data
    change, so a legend on a streamed plot restyles the page on every update; this
    costs the browser nothing after the first draw.
    """
    entries = [
        f'<span style="white-space: nowrap"><span style="display: inline-block; width: 30px; '
        f"vertical-align: middle; border-top: {3 if dash == 'solid' else 2}px {dash} {colour}"
        f'"></span> {label}</span>'
        for _column, label, colour, dash in ENERGY_LINES
    ]
    entries.append(f'<span style="color: {colours.HAMILTONIAN}">▲</span> batch switch')
    return '<div class="phviz-energy-key">' + " &nbsp; ".join(entries) + "</div>"


def timeline_figures(series: ColumnDataSource, n_tracked: int):
    """Energy (log), θ_i(t) and p_i(t), on one shared t range; the energy curves' key is
    ``energy_key()``."""
    # Ranges are set by the server (``sticky_range``), not auto-ranged in the browser:
    # an axis that moves on every streamed row re-lays out the page on every tick.
    t_range = Range1d(0, 1)
    energy = new_figure(
        "Energy: H = kinetic + potential",
        "time t",
        "energy (log)",
        y_axis_type="log",
        x_range=t_range,
        y_range=Range1d(1e-6, 10),
    )
    renderers = []
    for column, _label, colour, dash in ENERGY_LINES:
        width = 2 if dash != "solid" else LINE_WIDTH
        renderers.append(
            energy.line("t", column, source=series, color=colour, line_width=width, line_dash=dash)
        )
    energy.scatter(
        "t", "switch", source=series, marker="triangle", size=8, color=colours.HAMILTONIAN
    )
    energy.add_tools(
        HoverTool(
            renderers=renderers[:1],
            tooltips=[
                ("t", "@t{0.00}"),
                ("H", "@hamiltonian{0.0000e}"),
                ("potential", "@potential{0.0000e}"),
                ("kinetic", "@kinetic{0.0000e}"),
                ("dissipated", "@dissipated{0.0000e}"),
                ("supplied", "@supplied{0.0000e}"),
                ("|residual|", "@residual{0.0e}"),
                ("|gain jumps|", "@gain_jumps{0.0e}"),
            ],
            mode="vline",
        )
    )
    thetas = new_figure(
        "Parameters θ_i(t)", "time t", "θ_i", x_range=t_range, y_range=Range1d(-1, 1)
    )
    momenta = new_figure("Momenta p_i(t)", "time t", "p_i", x_range=t_range, y_range=Range1d(-1, 1))
    for k in range(n_tracked):
        colour = colours.coordinate_colour(k)
        thetas.line("t", theta_column(k), source=series, color=colour, line_width=LINE_WIDTH)
        momenta.line(
            "t",
            momentum_column(k),
            source=series,
            color=colour,
            line_width=LINE_WIDTH,
            line_dash="dashed",
        )
    for fig, column in ((thetas, "theta"), (momenta, "p")):
        tips = [("t", "@t{0.00}")] + [
            (f"#{k}", f"@{column}_{k}{{0.0000}}") for k in range(n_tracked)
        ]
        fig.add_tools(HoverTool(tooltips=tips, mode="vline", renderers=fig.renderers[:1]))
    return [styled(f) for f in (energy, thetas, momenta)]


# ------------------------------------------------------------------ phase portrait
def phase_figure(series: ColumnDataSource, head: ColumnDataSource, contours: ColumnDataSource):
    """(θ_k, p_k) from the series' columns (the glyph's fields pick k), over energy contours."""
    fig = new_figure("Phase portrait", "θ_k", "p_k", x_range=Range1d(-1, 1), y_range=Range1d(-1, 1))
    fig.line("x", "y", source=contours, color="#888888", line_width=1.5, alpha=0.8)
    path = fig.line(theta_column(0), momentum_column(0), source=series, line_width=3)
    dot = fig.scatter("x", "y", source=head, size=18, line_color="white", line_width=2)
    fig.add_tools(HoverTool(renderers=[path], tooltips=[("t", "@t{0.00}")]))
    return styled(fig), path, dot


def show_phase_coordinate(path_renderer, dot_renderer, k: int) -> None:
    colour = colours.coordinate_colour(k)
    path_renderer.glyph.x = theta_column(k)
    path_renderer.glyph.y = momentum_column(k)
    path_renderer.glyph.line_color = colour
    dot_renderer.glyph.fill_color = colour


# ------------------------------------------------------------------ landscape
def landscape_figure(surface, lines, trail, head):
    """Filled contours (an image in banded colours) with contour lines, trail and head."""
    fig = new_figure("Loss landscape", "d1", "d2", x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    mapper = LinearColorMapper(palette=_banded(Blues256[::-1], LANDSCAPE_LEVELS), low=0, high=1)
    image = fig.image("image", x="x", y="y", dw="dw", dh="dh", source=surface, color_mapper=mapper)
    fig.add_layout(
        ColorBar(
            color_mapper=mapper,
            title="log₁₀ potential",
            ticker=BasicTicker(),
            major_label_text_font_size="14px",
            title_text_font_size="14px",
        ),
        "right",
    )
    fig.add_tools(HoverTool(renderers=[image], tooltips=[("log₁₀ V", "@image{0.00}")]))
    fig.line("x", "y", source=lines, color="white", line_width=1, alpha=0.7)
    fig.line("x", "y", source=trail, color="black", line_width=2, alpha=0.6)
    cmap = linear_cmap("t", Plasma256, low=0, high=1)
    dots = fig.scatter("x", "y", source=trail, size=6, color=cmap, line_color=None)
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("t", "@t{0.00}"), ("V", "@v{0.0000}")]))
    fig.scatter("x", "y", source=head, size=20, color="#e6550d", line_color="white", line_width=3)
    fig.xaxis.ticker.desired_num_ticks = 4  # beside its colour bar the plot is narrow
    return styled(fig), mapper, cmap


def _banded(palette, n: int) -> list[str]:
    """``n`` colours taken evenly from ``palette`` (an image mapped with them looks like
    filled contours)."""
    idx = np.linspace(0, len(palette) - 1, n).round().astype(int)
    return [palette[i] for i in idx]


# ------------------------------------------------------------------ task
def regions_figure(regions: ColumnDataSource, points: ColumnDataSource, n_classes: int):
    """Decision regions (an image of predicted classes) under train and test points."""
    fig = new_figure(
        "Decision regions · train ● test ▲",
        "x₁",
        "x₂",
        x_range=Range1d(0, 1),
        y_range=Range1d(0, 1),
    )
    palette = list(colours.CLASSES[: max(n_classes, 2)])
    mapper = LinearColorMapper(palette=palette, low=-0.5, high=len(palette) - 0.5)
    fig.image(
        "image", x="x", y="y", dw="dw", dh="dh", source=regions, color_mapper=mapper, alpha=0.3
    )
    dots = fig.scatter(
        "x",
        "y",
        source=points,
        marker="marker",
        size="size",
        fill_color="fill",
        line_color="line",
        line_width=1.5,
    )
    # on the data points only: the regions' image and drawn points have no such columns
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("class", "@label"), ("set", "@set")]))
    return styled(fig)


def field_figure(error: ColumnDataSource, true: ColumnDataSource, learned: ColumnDataSource):
    """Learned (red) against true (grey) vector field over the error map ‖Ψ − f‖."""
    fig = new_figure(
        "Learned field (red) vs true (grey)", "u", "v", x_range=Range1d(0, 1), y_range=Range1d(0, 1)
    )
    mapper = LinearColorMapper(palette=Reds256[::-1][:200], low=0, high=1)
    img = fig.image(
        "image", x="x", y="y", dw="dw", dh="dh", source=error, color_mapper=mapper, alpha=0.8
    )
    fig.add_layout(
        ColorBar(
            color_mapper=mapper,
            title="error ‖Ψ − f‖",
            major_label_text_font_size="14px",
            title_text_font_size="14px",
        ),
        "right",
    )
    fig.add_tools(HoverTool(renderers=[img], tooltips=[("error", "@image{0.000}")]))
    fig.segment("x0", "y0", "x1", "y1", source=true, color="#555555", line_width=2)
    fig.segment("x0", "y0", "x1", "y1", source=learned, color=colours.TEST, line_width=3)
    fig.scatter("x1", "y1", source=learned, size=5, color=colours.TEST)
    return styled(fig), mapper


def confusion_figure(cells: ColumnDataSource, n_classes: int):
    names = [str(c) for c in range(n_classes)]
    fig = new_figure(
        "Test confusion matrix", "predicted class", "true class", x_range=names, y_range=names[::-1]
    )
    mapper = LinearColorMapper(palette=Blues256[::-1], low=0, high=1)
    fig.rect(
        "predicted",
        "true",
        1,
        1,
        source=cells,
        fill_color={"field": "count", "transform": mapper},
        line_color="white",
    )
    fig.text(
        "predicted",
        "true",
        text="label",
        source=cells,
        text_align="center",
        text_baseline="middle",
        text_font_size="13px",
    )
    fig.add_tools(
        HoverTool(tooltips=[("true", "@true"), ("predicted", "@predicted"), ("count", "@count")])
    )
    return styled(fig), mapper


def sticky_range(rng, values, *, log: bool = False, pad: float = 0.08, slack: float = 3.0):
    """Fit ``rng`` (a Range1d) to the finite ``values`` only when they leave it or fill
    less than 1/``slack`` of it, so the axis stands still between such jumps."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not len(values):
        return
    f, inv = (np.log10, lambda x: 10.0**x) if log else ((lambda x: x), (lambda x: x))
    lo, hi = float(f(values.min())), float(f(values.max()))
    # at least a readable span: ticks of a range 1e-10 wide overlap into one string
    span = max(hi - lo, 1e-3 if log else 1e-3 * max(1.0, abs(lo), abs(hi)))
    start, end = f(rng.start), f(rng.end)
    inside = start <= lo and hi <= end
    if inside and (end - start) <= slack * (1 + 2 * pad) * span:
        return
    rng.update(start=inv(lo - pad * span), end=inv(hi + pad * span))


def image_data(xs: np.ndarray, ys: np.ndarray, values: np.ndarray) -> dict:
    """One image's source data: the grid's values (float32, half the bytes on the wire,
    beyond what a colour map can show) over its extent."""
    dx = (xs[-1] - xs[0]) / max(len(xs) - 1, 1)
    dy = (ys[-1] - ys[0]) / max(len(ys) - 1, 1)
    return dict(
        image=[np.asarray(values, dtype=np.float32)],
        x=[xs[0] - dx / 2],
        y=[ys[0] - dy / 2],
        dw=[xs[-1] - xs[0] + dx],
        dh=[ys[-1] - ys[0] + dy],
    )


def point_data(x_train, y_train, x_test, y_test) -> dict:
    """Train points as filled circles, test points as hollow triangles, by class."""
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test]).astype(int)
    n_train = len(x_train)
    fills = [colours.CLASSES[c % len(colours.CLASSES)] for c in y]
    train = np.arange(len(x)) < n_train
    return dict(
        x=x[:, 0],
        y=x[:, 1],
        label=y,
        set=np.where(train, "train", "test"),
        marker=np.where(train, "circle", "triangle"),
        size=np.where(train, 7, 10),
        fill=[c if tr else "white" for c, tr in zip(fills, train, strict=True)],
        line=[("white" if tr else c) for c, tr in zip(fills, train, strict=True)],
    )
