"""The explorer's gain map tab, and the ghost curves it leaves on the energy plot.

``GainView`` belongs to one explorer session. Its map (a ``GainMap``) is computed around
the current gains for the data the run trains on (the user's own included) and the
current model, on the process's worker pool
(``Scheduler.run_once``), within the server's per-session budget, and is cancelled
when the data or the model change. A click on a cell sets that cell's gains in the
sidebar and restarts the run; the cell's H(t) from the map stays on the energy plot
as a dashed ghost to race. Ghosts of ``torch.optim.SGD`` with momentum and
``torch.optim.Adam`` from the same initial weights can be drawn there too; they are
computed on the pool from a copy the session's own slice takes, never on the
server's thread.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource

from ..config import make_config
from ..ghosts import GHOST_METHODS, ghost_run
from .gainmap import GainMap
from .live import DATA_SETTINGS, REBUILD

SIZES = {"3 × 3": 3, "5 × 5": 5, "7 × 7": 7}
HORIZONS = {"T = 2": 2.0, "T = 5": 5.0, "T = 10": 10.0, "T = 20": 20.0}
SPAN = 10.0  # the map spans the current gains ÷ SPAN to × SPAN, log-evenly
GHOST_STYLE = {
    "cell": ("#000000", "gain-map cell: H"),
    "sgd-momentum": ("#2ca02c", "SGD + momentum: potential"),
    "adam": ("#d62728", "Adam: potential"),
}
SYMBOLS = {"damping": "B", "inertia": "M", "potential_gain": "a", "weight_decay": "c"}
GHOST_HORIZON = 20.0  # ghosts' horizon where the settings have none (T = 0)
STALE = "Cancelled: the data or the model changed. Press Compute for a new map."


def gain_values(centre: float, n: int, span: float = SPAN) -> list[float]:
    """``n`` values from centre/span to centre·span, log-evenly, 3 significant digits
    (a centre of 0 counts as 1: a log axis has no 0)."""
    centre = centre if centre > 0 else 1.0
    return [float(f"{centre * span**e:.3g}") for e in np.linspace(-1.0, 1.0, n)]


class ExplorerGainMap(GainMap):
    """A ``GainMap`` whose axes are damping × inertia around the sidebar's gains."""

    size = param.Selector(default=5, objects=SIZES, doc="Cells along each axis.")

    def start(self) -> None:
        self.x_gain, self.y_gain = "damping", "inertia"
        self.x_values = gain_values(self.config.damping, self.size)
        self.y_values = gain_values(self.config.inertia, self.size)
        super().start()

    def __panel__(self):
        sizes = pn.widgets.Select.from_param(
            self.param.size, label="cells", width=110, css_classes=["phviz-map-size"]
        )
        horizon = pn.widgets.Select(
            label="horizon",
            options=HORIZONS,
            value=self.horizon,
            width=110,
            css_classes=["phviz-map-horizon"],
        )
        horizon.link(self, value="horizon")
        return pn.Column(
            pn.pane.Markdown(
                "Final training loss of a run for each damping B × inertia M around the "
                "current gains (same data, model and initial weights; solver "
                "conformal_leapfrog). White lines (key at the right): critical damping "
                "of the flattest (dotted) and stiffest (dashed) mode, thin at the start "
                "and thick at the end. **Click a cell** to use its gains.",
                sizing_mode="stretch_width",
            ),
            pn.Row(sizes, horizon),
            super().__panel__(),
            sizing_mode="stretch_both",
            css_classes=["phviz-gainmap"],
        )


class GainView:
    """The gain map tab and the energy plot's ghosts of one session: its ``settings``
    (what the sidebar shows) and its ``LiveSession``; the ghosts go on
    ``energy_figure``."""

    def __init__(self, session, settings, energy_figure):
        self.session = session
        self.settings = settings
        self.map = ExplorerGainMap(
            settings,
            on_pick=self.pick,
            runner=session.scheduler.run_once,
            budget=session.budget,
            parameters=self._parameters,
            data=lambda: session.data,
            deferred=True,
            size=5,
            horizon=5.0,
        )
        self.picked: dict | None = None
        self._picked_now: dict | None = None
        self._stale = False
        self.sources = {k: ColumnDataSource(dict(t=[], y=[])) for k in GHOST_STYLE}
        self._items = {}
        for key, (colour, label) in GHOST_STYLE.items():
            renderer = energy_figure.line(
                "t",
                "y",
                source=self.sources[key],
                color=colour,
                line_width=2.5,
                line_dash="dashed",
                line_alpha=0.8,
                legend_label=label,
            )
            # a ghost not drawn takes no room in the legend
            for legend in energy_figure.legend:
                for item in legend.items:
                    if renderer in item.renderers:
                        item.visible = False
                        self._items[key] = item
        self.optimizers = pn.widgets.Checkbox(
            label="Ghosts of SGD + momentum and Adam", value=False, css_classes=["phviz-ghosts"]
        )
        self.mapping = pn.pane.HTML(
            "", sizing_mode="stretch_width", styles={"font-size": "14px"}, margin=(0, 10)
        )
        self._lock = threading.Lock()
        self._ghosts: tuple | None = None  # (key, {method: Ghost or error text})
        self._wanted = None  # the key of the ghosts asked for last
        self._cancelled = threading.Event()
        self._data = session.data  # the user's own data the map was made for, if any
        settings.param.watch(self._on_rebuild, list(REBUILD))

    # ------------------------------------------------------------ the gain map
    def _parameters(self) -> int:
        run = self.session.run
        return run.dim if run is not None else 0

    def _on_rebuild(self, *events) -> None:
        """Data or model changed: a map in flight, or drawn, is of another problem. The
        map is cancelled now; the page changes at the next tick (a widget's callback
        may hold no document lock). The generated data set's settings change nothing
        while the run trains on the user's own data."""
        if self.session.data is not None and events:
            if all(e.name in DATA_SETTINGS for e in events):
                return
        if self.map.running:
            self.map.cancel(STALE)
        self._stale = True

    def _forget_map(self) -> None:
        self._stale = False
        self.map.result = None
        self.map.status = STALE
        self.picked = None
        self._show("cell", [], [])

    def pick(self, gains: dict) -> None:
        """A cell was clicked: the next tick applies its gains (a click's callback runs
        without the page's document lock, where nothing on the page may change)."""
        self._picked_now = dict(gains)

    def _apply_pick(self, gains: dict) -> None:
        """The sidebar takes the cell's gains, the run restarts and plays, and the
        cell's H(t) from the map is drawn as a ghost."""
        session = self.session
        self.settings.param.update(**gains)  # the widgets follow; the trainer too
        self.picked = dict(gains)
        result = self.map.result
        if result is not None:
            cell = result.hamiltonian.sel(gains, method="nearest")
            self._show("cell", cell.t.values, cell.values)
            label = ", ".join(f"{SYMBOLS[k]} = {v:g}" for k, v in gains.items())
            self.map.status = f"Using the cell's gains ({label}): the run restarted at t = 0."
        session.reset()
        session.play()

    # ------------------------------------------------------------ optimizer ghosts
    def update(self) -> None:
        """On the server's thread, every tick: the map's news, and the optimizer
        ghosts asked for, or drawn once the pool has made them."""
        self.map.sync()
        session = self.session
        if session.data is not self._data:  # own data, or back from it
            self._data = session.data
            self._on_rebuild()
        if self._stale:
            self._forget_map()
        picked, self._picked_now = self._picked_now, None
        if picked is not None:
            self._apply_pick(picked)
        if not self.optimizers.value or session.run is None:
            if self._wanted is not None:
                self._cancelled.set()
                self._wanted = None
                for key in GHOST_METHODS:
                    self._show(key, [], [])
                self.mapping.object = ""
            return
        key = self._key()
        if key != self._wanted:
            self._launch(key)
        with self._lock:
            ready, self._ghosts = self._ghosts, None
        if ready is not None and ready[0] == self._wanted:
            self._draw(ready[1])

    def _key(self) -> tuple:
        s = self.settings
        gains = (s.damping, s.inertia, s.potential_gain, s.weight_decay, s.step_size, s.horizon)
        return (self.session.run.build, *gains)

    def _launch(self, key: tuple) -> None:
        self._cancelled.set()
        cancelled = self._cancelled = threading.Event()
        self._wanted = key
        config = make_config(**self.settings.values())
        horizon = config.horizon if config.horizon > 0 else GHOST_HORIZON
        session = self.session
        self.mapping.object = "ghosts: computing…"

        def snapshot(trainer) -> None:  # in the session's slice: the trainer is its own
            model = copy.deepcopy(trainer.model)
            theta0 = trainer.initial_theta.detach().clone()
            ds = trainer.dataset
            session.scheduler.run_once(
                lambda: self._compute(key, model, theta0, ds, config, horizon, cancelled)
            )

        session.with_trainer(snapshot)

    def _compute(self, key, model, theta0, ds, config, horizon, cancelled) -> None:
        out = {}
        for method in GHOST_METHODS:
            try:
                out[method] = ghost_run(
                    method,
                    model,
                    theta0,
                    ds.loss_fn,
                    ds.x_train,
                    ds.y_train,
                    config,
                    horizon=horizon,
                    cancelled=cancelled.is_set,
                )
            except ValueError as err:
                out[method] = f"{err}"
        if not cancelled.is_set():
            with self._lock:
                self._ghosts = (key, out)

    def _draw(self, ghosts: dict) -> None:
        lines = []
        for method, ghost in ghosts.items():
            if isinstance(ghost, str):
                self._show(method, [], [])
                lines.append(f"{GHOST_STYLE[method][1].split(':')[0]}: not drawn. {ghost}")
                continue
            y = np.asarray(ghost.potential, dtype=float)
            self._show(method, np.asarray(ghost.t), np.where(y > 0, y, np.nan))
            lines.append(ghost.note)
        lines.append("Full batch, from the run's initial weights; t = step·h.")
        self.mapping.object = '<div class="phviz-ghost-note">' + "<br>".join(lines) + "</div>"

    def _show(self, key: str, t, y) -> None:
        self.sources[key].data = dict(t=t, y=y)
        if key in self._items:
            self._items[key].visible = len(t) > 0

    # ------------------------------------------------------------ layout
    def sidebar(self) -> list:
        return [self.optimizers, self.mapping]

    def close(self) -> None:
        self.map.cancel()
        self._cancelled.set()
