"""Explorer speed, measured on the server side, in one run:

1. the per-tick cost of the two ways to stream the time-series curves — Bokeh
   ``ColumnDataSource.stream`` (what the explorer uses) against HoloViews
   ``Buffer`` feeding ``DynamicMap`` overlays of the same curves — so the choice
   is measured, not asserted;
2. plot updates per second that carry new data, with the explorer's periodic
   callback called on a fixed schedule as the server calls it, while the training
   thread runs the default set-up;
3. the latency from a change of the damping widget to the trainer using it.

No browser: what the browser does with the messages is not counted.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

ROWS_PER_TICK = 4  # 40 intervals/s (the default speed) over 10 ticks/s
FILLED_ROWS = 1000  # a history half full, as after a minute of training


def _rows(history_names, start: int, n: int) -> dict[str, np.ndarray]:
    t = 0.1 * np.arange(start, start + n)
    rows = {name: np.cos(t + k) + 2.0 for k, name in enumerate(history_names)}
    rows["t"] = t
    return rows


def streaming_costs(ticks: int) -> dict[str, list[float]]:
    """Seconds per tick to stream ROWS_PER_TICK rows into the energy, θ and p plots."""
    import holoviews as hv
    import pandas as pd
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    from ..views import figures
    from ..views.history import SCALARS, momentum_column, theta_column

    hv.extension("bokeh", logo=False)
    n = 8
    thetas = [theta_column(k) for k in range(n)]
    momenta = [momentum_column(k) for k in range(n)]
    names = list(SCALARS) + thetas + momenta
    energies = ["hamiltonian", "potential", "kinetic", "dissipated", "residual"]
    costs = {}

    # Bokeh: the explorer's own figures on one source; only new rows travel.
    source = ColumnDataSource(_rows(names, 0, FILLED_ROWS))
    doc = Document()
    for fig in figures.timeline_figures(source, n):
        doc.add_root(fig)
    costs["Bokeh ColumnDataSource.stream"] = _time_ticks(
        ticks, lambda i: source.stream(_rows(names, FILLED_ROWS + i * ROWS_PER_TICK, 4))
    )

    # HoloViews: one Buffer, three DynamicMap overlays of the same curves.
    buffer = hv.streams.Buffer(pd.DataFrame(_rows(names, 0, FILLED_ROWS)), length=2001, index=False)

    def overlay(columns, logy=False):
        def draw(data):
            return hv.Overlay([hv.Curve(data, "t", c) for c in columns]).opts(
                hv.opts.Curve(logy=logy, line_width=3)
            )

        return hv.DynamicMap(draw, streams=[buffer])

    layout = overlay(energies, logy=True) + overlay(thetas) + overlay(momenta)
    pn.panel(layout).get_root(Document())
    costs["HoloViews Buffer → DynamicMap"] = _time_ticks(
        ticks,
        lambda i: buffer.send(pd.DataFrame(_rows(names, FILLED_ROWS + i * ROWS_PER_TICK, 4))),
    )
    return costs


def _time_ticks(ticks: int, send) -> list[float]:
    import panel as pn

    costs = []
    for i in range(ticks):
        t0 = time.perf_counter()
        with pn.io.hold():
            send(i)
        costs.append(time.perf_counter() - t0)
    return costs


def live_explorer(seconds: float, changes: int):
    """(updates with data per second, tick costs, damping latencies, status) of an
    explorer whose callback is called on the server's fixed schedule."""
    import panel as pn

    from ..views import Explorer
    from ..views.clock import TICK_SECONDS

    explorer = Explorer(live=False)
    pn.panel(explorer).get_root()  # the Bokeh models exist, as in a served page
    while not explorer.session.ready:  # the first build runs on the worker pool
        explorer.update_view(force=True)
        time.sleep(0.01)
    explorer.session.play()
    costs, with_data = [], 0
    started = due = time.monotonic()
    while time.monotonic() - started < seconds:
        due += TICK_SECONDS
        now = time.monotonic()
        while due < now:  # as Tornado's PeriodicCallback: a late tick skips, never bunches
            due += TICK_SECONDS
        time.sleep(due - now)
        before = len(explorer.plots.series.data["t"])
        t0 = time.perf_counter()
        explorer.update_view(force=True)  # no page here to acknowledge frames
        costs.append(time.perf_counter() - t0)
        with_data += len(explorer.plots.series.data["t"]) != before
    rate = with_data / (time.monotonic() - started)
    latencies = []
    session = explorer.session

    def in_use(trainer) -> float:
        return float(trainer.system.damping)

    for value in (1.0, 0.4, 1.5, 0.6, 2.0, 0.8)[:changes]:
        t0 = time.perf_counter()
        explorer.settings.damping = value  # what the widget's change does on the server
        # the session's own slice reads the trainer's gain: one question a slice
        while session.ask(in_use) != value and time.perf_counter() - t0 < 5:
            pass
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.2)
        explorer.update_view(force=True)
    status = explorer.session.status()
    explorer.close()
    return rate, costs, latencies, status


def report(quick: bool = False) -> None:
    from ..views.clock import TICK_SECONDS

    ticks = 30 if quick else 100
    print(
        f"streaming {ROWS_PER_TICK} new rows per tick into energy (5 curves), θ (8) and p (8)"
        f" plots holding {FILLED_ROWS} rows:"
    )
    for name, costs in streaming_costs(ticks).items():
        print(
            f"  {name:32s} median {1e3 * statistics.median(costs):6.1f} ms/tick,"
            f" max {1e3 * max(costs):6.1f} ms ({ticks} ticks)"
        )
    seconds = 4.0 if quick else 10.0
    rate, costs, latencies, status = live_explorer(seconds, 3 if quick else 6)
    print(
        f"explorer, default set-up, callback every {1e3 * TICK_SECONDS:.0f} ms"
        f" on a fixed schedule, {seconds:.0f} s:"
    )
    print(f"  plot updates with new data: {rate:.1f} /s")
    print(
        f"  whole tick (drain, stream, pictures, status): median"
        f" {1e3 * statistics.median(costs):.1f} ms, max {1e3 * max(costs):.1f} ms"
    )
    print(
        "  damping change → in use by the trainer:"
        f" median {1e3 * statistics.median(latencies):.0f} ms,"
        f" max {1e3 * max(latencies):.0f} ms"
    )
    print(f"  training speed meanwhile: {status['steps_per_second']:.0f} intervals/s (cap 40/s)")
