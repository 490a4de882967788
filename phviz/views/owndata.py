"""Your own data in the explorer: points drawn on the data plot, or a CSV file.

The drawn points live in one editable source that every new decision-regions figure
draws, with Bokeh's point-draw tool over it: a click adds a point of the class
picked in "Class to draw", a drag moves one, Backspace deletes the selected ones.
"Train on drawn points" and an uploaded file start a new run on exactly those points
(``LiveSession.use_data``); "Back to …" returns to the generated data set. Every
problem (too few points, one class, a bad file) is said in the banner and the run in
progress stays. A file is read on the worker pool, not on the server's thread.

The page and the server each hold a copy of the drawn points, and the draw tool sends
the page's whole copy after every edit. When the server replaces the points ("Start
from the current data", "Clear"), a click before the new points reach the page would
send the old copy back and undo the replacement; so every replacement carries a new
version column, and the server keeps only edits made on its latest version. The count
of drawn points is written in the page, from the page's own copy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, CustomJS, Div, PointDrawTool
from bokeh.transform import linear_cmap

from .. import colours
from ..links import link_data
from ..userdata import MAX_CLASSES, points_dataset, read_points_csv
from .layout import lazy_section
from .live import Notice

DRAW_CLASSES = 4  # classes the picker offers (a file may bring up to MAX_CLASSES)
DRAWN = "your drawn points"
VERSION = "version"  # the name of the column that says which replacement a copy came from
MARKER_RADIUS = 7  # px: a click this close to a drawn point is on it
# A second click within 300 ms is a double tap to Bokeh, which the draw tool ignores:
# a quick second point would be lost. This adds it as the tool adds a tap's point,
# unless the click is on a drawn point (a tap there selects it).
DOUBLE_TAP = f"""
if (!tool.active) return
const {{x, y}} = cb_obj
const xs = source.get_array("x"), ys = source.get_array("y")
const kx = fig.inner_width / (fig.x_range.end - fig.x_range.start)
const ky = fig.inner_height / (fig.y_range.end - fig.y_range.start)
for (let i = 0; i < xs.length; i++) {{
  if (Math.hypot((xs[i] - x) * kx, (ys[i] - y) * ky) < {MARKER_RADIUS}) return
}}
for (const column of source.columns()) {{
  const value = column == "x" ? x : column == "y" ? y : tool.empty_value
  source.get_array(column).push(value)
}}
source.setv({{data: source.data}}, {{check_eq: false}})
"""


def drawn_points(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, 2), labels (N,)) from the draw source's columns; points the browser
    left without a class take class 0."""
    x = np.asarray(data.get("x", []), dtype=float)
    y = np.asarray(data.get("y", []), dtype=float)
    labels = [0 if v is None or v != v else v for v in data.get("label", [])]
    return np.column_stack([x, y]).reshape(-1, 2), np.asarray(labels, dtype=float)


def training_points_html(dataset, own: bool) -> str:
    """The line under the data controls: how many points the run trains on, and which."""
    n = len(dataset.x_train)
    where = dataset.name if own else f"the generated '{dataset.name}' data"
    return f'<div class="phviz-training-points">Training on {n} points ({where})</div>'


class OwnData:
    """The "Your data" controls and the draw layer of one ``LiveSession``;
    ``on_notice()`` shows a notice it posted at once."""

    def __init__(self, session, on_notice: Callable[[], None] | None = None):
        self.session = session
        self.on_notice = on_notice
        self.drawn = ColumnDataSource(dict(x=[], y=[], label=[]))
        self._version = 0  # of the server's last replacement of the drawn points
        self._put_last: dict = {}  # the server's last own change of the drawn points
        self.tools: list[PointDrawTool] = []
        self._build = None  # the run whose points the count shows
        self._upload = None  # (file name, the pool's task reading it)
        self.class_picker = pn.widgets.RadioButtonGroup(
            label="Class to draw",
            options=[str(c) for c in range(DRAW_CLASSES)],
            value="0",
            color="light",
            css_classes=["phviz-draw-class"],
            margin=(0, 10, 5, 10),
        )
        self.class_picker.param.watch(self._on_class, "value")
        self.use_button = pn.widgets.Button(
            label="Train on drawn points", color="success", css_classes=["phviz-use-drawn"]
        )
        self.from_current = pn.widgets.Button(
            label="Start from the current data", css_classes=["phviz-from-current"]
        )
        self.clear_button = pn.widgets.Button(label="Clear", width=70, css_classes=["phviz-clear"])
        self.back_button = pn.widgets.Button(
            label="Back to the data set", visible=False, css_classes=["phviz-back-to-data"]
        )
        self.upload = pn.widgets.FileInput(accept=".csv", css_classes=["phviz-upload"])
        self.use_button.on_click(lambda _: self.train_on_drawn())
        self.from_current.on_click(lambda _: self.start_from_current())
        self.clear_button.on_click(lambda _: self.set_drawn(np.zeros((0, 2)), np.zeros(0)))
        self.back_button.on_click(lambda _: self.back())
        self.upload.param.watch(self._on_upload, "value")
        self.drawn_count = Div(text=_drawn_count_html(0), margin=(0, 10))
        self.drawn.on_change("data", self._on_edit)
        self.drawn.js_on_change(
            "data",
            CustomJS(
                args=dict(source=self.drawn, count=self.drawn_count),
                code=f"count.text = `{_drawn_count_html('${source.get_length() ?? 0}')}`",
            ),
        )
        self.count = pn.pane.HTML(
            '<div class="phviz-training-points">Training on … points</div>',
            sizing_mode="stretch_width",
            styles={"font-size": "15px"},
            margin=(0, 10, 5, 10),
        )
        self.set_drawn(np.zeros((0, 2)), np.zeros(0))
        self.open_link()

    def open_link(self, args: dict | None = None) -> None:
        """Train on the points a link's ``data`` carries (the page's query arguments),
        drawn and ready to edit; a bad value is said and the set-up's data stays."""
        args = (pn.state.session_args or {}) if args is None else args
        value = args.get("data")
        if not value:
            return
        text = value[-1] if isinstance(value, list | tuple) else value
        text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
        try:
            x, labels = link_data(text)
        except ValueError as err:
            self.session.notice = Notice(f"{err}. The data set of the settings is used.", "warning")
            return
        self.set_drawn(x, labels)
        self.train_on_drawn(f"Training on the link's {len(x)} points.")

    def panels(self) -> list:
        """The sidebar's line of training points, and the "Your data" controls in a
        section made on its first expand."""
        return [self.count, lazy_section("Your data", self._controls, "phviz-own-data")]

    def _controls(self) -> list:
        return [
            pn.pane.Markdown(
                "Pick a class, click on the data plot to add a point "
                "(drag to move, Backspace deletes the selected), or load a CSV "
                "(x1, x2, label; or x1, x2, y1, y2).",
                margin=(0, 10),
                styles={"font-size": "14px"},
            ),
            pn.pane.HTML("Class to draw", margin=(0, 10)),
            self.class_picker,
            pn.Row(self.use_button, self.clear_button),
            pn.pane.Bokeh(self.drawn_count),
            self.from_current,
            self.upload,
            self.back_button,
        ]

    # ------------------------------------------------------------ the figure
    def decorate(self, fig, kind: str) -> None:
        """Put the drawn points and the point-draw tool on a new task figure of ``kind``
        (decision regions only)."""
        if kind != "regions":
            return
        palette = list(colours.CLASSES[:MAX_CLASSES])
        renderer = fig.scatter(
            "x",
            "y",
            source=self.drawn,
            marker="diamond",
            size=13,
            fill_color=linear_cmap("label", palette, -0.5, len(palette) - 0.5),
            line_color="black",
            line_width=1.2,
        )
        tool = PointDrawTool(
            renderers=[renderer], empty_value=int(self.class_picker.value), add=True, drag=True
        )
        fig.add_tools(tool)
        fig.toolbar.active_multi = tool  # a click on the plot draws at once
        fig.js_on_event(
            "doubletap", CustomJS(args=dict(source=self.drawn, tool=tool, fig=fig), code=DOUBLE_TAP)
        )
        self.tools = [tool]

    def _on_class(self, event) -> None:
        with pn.io.unlocked():  # a widget's callback may hold no document lock
            for tool in self.tools:
                tool.empty_value = int(event.new)

    # ------------------------------------------------------------ actions
    def train_on_drawn(self, reason: str | None = None) -> None:
        """A new run on exactly the drawn points (all of them train and test)."""
        x, labels = drawn_points(self.drawn.data)
        try:
            data = points_dataset(
                x, labels, train_fraction=1.0, max_points=self._max_points(), name=DRAWN
            )
        except ValueError as err:
            self._say(f"{err}. The run in progress is kept.")
            return
        reason = reason or f"Training on your {len(x)} drawn points: the run restarted at t = 0."
        self._use(data, reason)

    def start_from_current(self) -> None:
        """The run's training points become the drawn points, to edit."""
        run = self.session.run
        if run is None:
            return
        ds = run.dataset
        if ds.task != "classification" or ds.input_dim != 2:
            self._say("Only points of two coordinates and a class can be drawn.")
            return
        self.set_drawn(ds.x_train.cpu().numpy(), ds.y_train.cpu().numpy())

    def back(self) -> None:
        """Train on the generated data set of the settings again; the drawn points go."""
        self.set_drawn(np.zeros((0, 2)), np.zeros(0))
        self._use(None, f"Back to the '{self.session.config.dataset}' data set.")

    def set_drawn(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Replace the drawn points (a new version: edits the page made on an older
        copy are not kept)."""
        self._version += 1
        x = np.asarray(x, dtype=float).reshape(-1, 2)
        self._put(
            {
                "x": x[:, 0].tolist(),
                "y": x[:, 1].tolist(),
                "label": np.asarray(labels).astype(int).tolist(),
                f"{VERSION} {self._version}": [0] * len(x),
            }
        )

    def load_csv(self, name: str, content: bytes) -> None:
        """Read a CSV file on the pool; ``update`` starts the run when it is read."""
        limit = self._max_points()
        config = self.session.config
        fraction = config.train_fraction if config.train_fraction is not None else 0.75

        def read():
            x, y = read_points_csv(content, max_points=limit)
            return points_dataset(
                x,
                y,
                train_fraction=fraction,
                seed=config.data_seed,
                max_points=limit,
                name=name,
            )

        self._upload = (name, self.session.scheduler.run_once(read))

    def _on_upload(self, event) -> None:
        if event.new is None:
            return
        self.load_csv(self.upload.filename or "your file", event.new)

    # ------------------------------------------------------------ the tick
    def update(self) -> None:
        """A file that has been read starts its run; the count follows the run."""
        if self._upload is not None and self._upload[1].done:
            (name, task), self._upload = self._upload, None
            try:
                data = task.result(0)
            except (ValueError, TypeError) as err:
                self._say(f"{name}: {err}. The run in progress is kept.")
            else:
                n = len(data.x_train) + len(data.x_test)
                self._use(data, f"Training on {name} ({n} points): the run restarted at t = 0.")
        run = self.session.run
        if run is not None and run.build != self._build:
            self._build = run.build
            own = self.session.data is not None
            self.count.object = training_points_html(run.dataset, own)
            self.back_button.label = f"Back to {self.session.config.dataset}"
            self.back_button.visible = own

    # ------------------------------------------------------------ helpers
    def _use(self, data, reason: str) -> None:
        try:
            self.session.use_data(data, reason)
        except ValueError as err:
            self._say(f"{err}. The run in progress is kept.")

    def _max_points(self) -> int:
        return self.session.budget.max_samples

    def _put(self, data: dict) -> None:
        """The server's own change of the drawn points; the count follows them to the
        page (in this order: the page counts what it holds). A button's callback may
        hold no document lock: ``unlocked`` sends the changes all the same."""
        self._put_last = data
        with pn.io.unlocked():
            self.drawn.data = data
            self.drawn_count.text = _drawn_count_html(len(data["x"]))

    def _on_edit(self, attr, old, new) -> None:
        """An edit from the page: kept if made on the latest version (a point it added
        takes the class picked, which may have reached the server after the click);
        otherwise the page gets the server's points back and is told why."""
        if new == self._put_last:  # the server's own change
            return
        if f"{VERSION} {self._version}" not in new:
            self._put(dict(old))
            self._say(
                "A point drawn before the new points had reached the page was not kept: "
                "draw it again.",
                "warning",
            )
            return
        label = int(self.class_picker.value)
        added = len(new["x"]) == len(old["x"]) + 1
        if added and new["label"][-1] != label:
            self._put({**new, "label": [*new["label"][:-1], label]})

    def _say(self, text: str, kind: str = "danger") -> None:
        self.session.notice = Notice(text, kind)
        if self.on_notice is not None:
            self.on_notice()


def _drawn_count_html(n) -> str:
    return f'<span class="phviz-drawn-count">{n} points drawn</span>'
