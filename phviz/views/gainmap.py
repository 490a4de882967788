"""The gain map: final loss (or time to target) over two gains, to pick gains by eye.

A ``GainMap`` runs ``phviz.sweep`` in the background (a thread of its own, or whatever
``runner`` it is given: the explorer hands it ``Scheduler.run_once`` so the map shares
the server's worker pool) with a progress bar and a Cancel button, then draws the map
with HoloViews: one rectangle per cell on log axes, coloured by log10 of the chosen
quantity, numbers on hover, the critical-damping curves on top. A click on a cell
calls ``on_pick(gains)`` with that cell's gains.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the renderer the options need)
import numpy as np
import panel as pn
import param

from ..budget import Budget
from ..config import TrainingConfig, make_config
from ..gainmaps import cell_edges, critical_curves
from ..gains import GAINS
from ..sweep import sweep
from .helpview import helped

CURVE_LABELS = ("λ_min initial", "λ_max initial", "λ_min final", "λ_max final")
LEGEND = {
    "background_fill_color": "#3b3b3b",
    "background_fill_alpha": 1.0,
    "label_text_color": "white",
    "label_text_font_size": "14px",
}
QUANTITIES = {"final_train_loss": "final training loss", "time_to_target": "time to target"}
CELL_FACTS = ("final_train_loss", "time_to_target", "diverged")  # the hover's other columns


class Cancelled(Exception):
    """Raised from the sweep's progress callback to stop it."""


def in_thread(fn: Callable[[], object]) -> None:
    """The default runner: ``fn`` in a daemon thread of its own."""
    threading.Thread(target=fn, name="phviz-gainmap", daemon=True).start()


class GainMap(pn.viewable.Viewer):
    """A gain map of ``config`` over two gains; ``on_pick(gains)`` on a click."""

    x_gain = param.Selector(default="damping", objects=list(GAINS), doc="Gain along x.")
    y_gain = param.Selector(default="inertia", objects=list(GAINS), doc="Gain along y.")
    x_values = param.List(default=[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4], doc="Values along x.")
    y_values = param.List(default=[0.25, 0.5, 1.0, 2.0, 4.0], doc="Values along y.")
    horizon = param.Number(default=10.0, bounds=(0.0, None), doc="End time T of every run.")
    quantity = param.Selector(
        default="final_train_loss", objects=list(QUANTITIES), doc="What the colour shows."
    )
    running = param.Boolean(default=False, constant=True, doc="A sweep is being computed.")
    status = param.String(default="Press Compute to draw the map.", doc="One line of news.")
    result = param.Parameter(default=None, doc="The last map (an xarray.Dataset) or None.")

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        on_pick: Callable[[dict], None] | None = None,
        runner: Callable[[Callable[[], object]], object] | None = None,
        budget: Budget | None = None,
        parameters: Callable[[], int] | None = None,
        data: Callable[[], object] | None = None,
        deferred: bool = False,
        **params,
    ):
        """``runner(fn)`` runs ``fn`` in the background (default: a thread).
        ``budget`` with ``parameters()`` (the model's parameter count) refuses a map
        over the server's limits before anything runs. ``data()`` gives the
        ``Dataset`` to train on (None: the one ``config`` names). ``deferred``: the background
        work only leaves its news (progress, status, result) for ``sync()`` to apply on
        the caller's thread, e.g. a server's periodic callback."""
        super().__init__(**params)
        self.config = config if config is not None else TrainingConfig()
        self.on_pick = on_pick
        self.runner = runner if runner is not None else in_thread
        self.budget = budget
        self.parameters = parameters
        self.data = data
        self.deferred = deferred
        self._cancel = threading.Event()
        self._cancel_reason = "Cancelled."
        self._done = threading.Event()
        self._done.set()
        self._news_lock = threading.Lock()
        self._news: dict = {}
        self.progress = pn.indicators.Progress(value=0, max=100, visible=False, width=240)
        # Cells and curves are two DynamicMaps overlaid: a Tap stream on a DynamicMap
        # that returns an Overlay never fires in a served page; on the cells alone it does.
        self.cells = hv.DynamicMap(pn.bind(self._cells, self.param.result, self.param.quantity))
        self.curves = hv.DynamicMap(pn.bind(self._curves, self.param.result))
        # The curves' key goes right of the map, on a dark ground for the white lines:
        # inside the axes it hid cells.
        self.map = (self.cells * self.curves).opts(
            legend_position="right", legend_opts=LEGEND, backend="bokeh"
        )
        self.tap = hv.streams.Tap(source=self.cells, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)

    # ------------------------------------------------------------ computing
    def start(self) -> None:
        """Compute the map in the background (a running one is cancelled first)."""
        self.cancel()
        if self.x_gain == self.y_gain:
            self.status = f"Choose two different gains (both are {self.x_gain})."
            return
        cells = len(self.x_values) * len(self.y_values)
        if self.budget is not None:
            try:
                n = self.parameters() if self.parameters is not None else 0
                self.budget.check_map(cells, n)
            except ValueError as err:
                self.status = f"{err}."
                return
        cancel = self._cancel = threading.Event()
        done = self._done = threading.Event()
        with self._news_lock:
            self._news = {}
        axes = {self.x_gain: list(self.x_values), self.y_gain: list(self.y_values)}
        config = make_config(**self.config.values())  # a snapshot: the sidebar may move on
        dataset = self.data() if self.data is not None else None
        with param.edit_constant(self):
            self.running = True
        self.progress.value, self.progress.visible = 0, True
        self.status = f"Computing {cells} runs …"
        self.runner(lambda: self._compute(config, dataset, axes, cancel, done))

    def cancel(self, reason: str = "Cancelled.") -> None:
        """Stop the sweep in flight, if any (it stops within one switching interval);
        ``reason`` becomes the status line once it has stopped."""
        self._cancel_reason = reason
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the sweep in flight has finished or stopped."""
        self._done.wait(timeout)
        if self.deferred:
            self.sync()

    def sync(self) -> None:
        """Apply what the background work left (deferred mode; any mode is safe)."""
        with self._news_lock:
            news, self._news = self._news, {}
        if "progress" in news:
            self.progress.value = news["progress"]
        if "result" in news:
            self.result = news["result"]
        if "status" in news:
            self.status = news["status"]
        if news.get("finished"):
            self.progress.visible = False
            with param.edit_constant(self):
                self.running = False

    def _tell(self, cancel: threading.Event, **news) -> None:
        if cancel is not self._cancel:  # a newer map was started: this one is old news
            return
        with self._news_lock:
            self._news.update(news)
        if not self.deferred:
            self.sync()

    def _compute(self, config, dataset, axes: dict, cancel: threading.Event, done) -> None:
        def progress(n: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled
            self._tell(cancel, progress=int(100 * n / max(total, 1)))

        try:
            ds = sweep(config, horizon=self.horizon, progress=progress, dataset=dataset, **axes)
        except Cancelled:
            self._tell(cancel, status=self._cancel_reason, finished=True)
        except (ValueError, TypeError) as err:
            self._tell(cancel, status=f"Could not compute the map: {err}", finished=True)
        except Exception as err:  # never a traceback in the page
            self._tell(cancel, status=f"The map failed: {err}", finished=True)
        else:
            n_diverged = int(ds.diverged.sum())
            status = (
                f"{ds.final_train_loss.size} runs to T = {ds.attrs['horizon']:g} in "
                f"{ds.attrs['wall_seconds']:.1f} s"
                + (f" · {n_diverged} diverged (×)" if n_diverged else "")
                + " · click a cell to use its gains"
            )
            self._tell(cancel, result=ds, status=status, finished=True)
        finally:
            done.set()

    # ------------------------------------------------------------ drawing
    def element(self, result=None, quantity: str | None = None) -> hv.Overlay:
        """The map as HoloViews elements (empty axes before the first result): the
        cells' rectangles, then one curve per critical-damping curve drawn."""
        result = self.result if result is None else result
        cells = self._cells(result, quantity or self.quantity)
        return hv.Overlay([cells, *self._curve_layers(result)])

    def _cells(self, result=None, quantity: str | None = None) -> hv.Rectangles:
        quantity = quantity or self.quantity
        label = QUANTITIES[quantity]
        if result is None:
            # the same columns and colour mapping as a map's, so that the colour bar made
            # with this first frame is there when the map comes
            vdims = [self.x_gain, self.y_gain, f"log10 {label}", *CELL_FACTS]
            return hv.Rectangles([], kdims=["x0", "y0", "x1", "y1"], vdims=vdims).opts(
                color=f"log10 {label}",
                cmap="viridis",
                colorbar=True,
                logx=True,
                logy=True,
                xlabel=self.x_gain.replace("_", " "),
                ylabel=self.y_gain.replace("_", " "),
                tools=["hover", "tap"],
                responsive=True,
                min_height=360,
                fontscale=1.3,
                framewise=True,
            )
        first, second = result.final_train_loss.dims
        x, y = result[first].values, result[second].values
        xe, ye = cell_edges(x), cell_edges(y)
        rows = []
        for i in range(len(x)):
            for j in range(len(y)):
                cell = result.isel({first: i, second: j})
                value = float(cell[quantity])
                rows.append(
                    (xe[i], ye[j], xe[i + 1], ye[j + 1], float(x[i]), float(y[j]),
                     np.log10(value) if value > 0 else np.nan,
                     float(cell.final_train_loss), float(cell.time_to_target),
                     bool(cell.diverged))
                )  # fmt: skip
        vdims = [first, second, f"log10 {label}", *CELL_FACTS]
        return hv.Rectangles(rows, kdims=["x0", "y0", "x1", "y1"], vdims=vdims).opts(
            color=f"log10 {label}",
            cmap="viridis",
            colorbar=True,
            line_color=None,
            logx=True,
            logy=True,
            tools=["hover", "tap"],
            xlabel=first.replace("_", " "),
            ylabel=second.replace("_", " "),
            title=f"{label} over {first.replace('_', ' ')} × {second.replace('_', ' ')}",
            responsive=True,
            min_height=360,
            fontscale=1.3,
            framewise=True,  # each new map brings its own axes' ranges
        )

    def _curve_layers(self, result) -> list[hv.Curve]:
        """The critical-damping curves with a positive B (a·λ + c ≤ 0: B = 0, which a
        log axis cannot show)."""
        if result is None:
            return []
        first, second = result.final_train_loss.dims
        other = second if first == "damping" else first
        layers = []
        for curve in critical_curves(result):
            if not (curve["damping"] > 0).any():
                continue
            xs, ys = curve["damping"], curve[other]
            if first != "damping":
                xs, ys = ys, xs
            label = curve["label"]
            layers.append(
                hv.Curve((xs, ys), first, second, label=f"critical, {label}").opts(
                    color="white",
                    # flattest dotted, stiffest dashed; the run's end thicker than its start
                    line_width=4 if "final" in label else 2,
                    line_dash="dotted" if "min" in label else "dashed",
                    logx=True,
                    logy=True,
                    framewise=True,
                )
            )
        return layers

    def _curves(self, result=None) -> hv.Overlay:
        """The curves as one overlay of fixed shape (a DynamicMap's frames must agree):
        one line each for λ_min and λ_max, initial and final, empty where not drawn."""
        drawn = {layer.label: layer for layer in self._curve_layers(result)}
        layers = []
        for label in CURVE_LABELS:
            name = f"critical, {label}"
            empty = hv.Curve([], self.x_gain, self.y_gain, label=name).opts(color="white")
            layers.append(drawn.get(name, empty))
        return hv.Overlay(layers)

    # ------------------------------------------------------------ picking
    def pick(self, x: float, y: float) -> dict | None:
        """The gains of the cell nearest (x, y) on the log axes; calls ``on_pick`` with them."""
        if self.result is None or x is None or y is None:
            return None
        first, second = self.result.final_train_loss.dims
        gains = {
            first: _nearest(self.result[first].values, x),
            second: _nearest(self.result[second].values, y),
        }
        if self.on_pick is not None:
            self.on_pick(gains)
        return gains

    def _on_tap(self, x=None, y=None) -> None:
        self.pick(x, y)

    # ------------------------------------------------------------ layout
    def __panel__(self):
        compute = pn.widgets.Button(label="Compute", color="primary")
        stop = pn.widgets.Button(label="Cancel")
        compute.on_click(lambda _: self.start())
        stop.on_click(lambda _: self.cancel())
        controls = pn.Row(
            compute,
            stop,
            pn.widgets.Select.from_param(
                self.param.quantity,
                label="colour",
                options={label: key for key, label in QUANTITIES.items()},
            ),
            self.progress,
        )
        return pn.Column(
            controls,
            pn.pane.Str(self.param.status),
            helped(
                pn.pane.HoloViews(self.map, sizing_mode="stretch_both", min_height=400), "gainmap"
            ),
            sizing_mode="stretch_both",
        )


def _nearest(values: np.ndarray, target: float) -> float:
    v = np.asarray(values, dtype=float)
    if target > 0 and (v > 0).all():
        return float(v[np.argmin(np.abs(np.log(v) - np.log(target)))])
    return float(v[np.argmin(np.abs(v - target))])
