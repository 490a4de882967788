"""Explorer speed, measured on the server side: plot updates per second that carry
new data, and the latency from a widget change to its effect while training.

The explorer is built as a session would build it (no browser); its periodic
callback is called every 100 ms as the server would, while the training thread runs
the default set-up. "Updates with data" counts ticks that streamed new rows to the
plots; "tick cost" is the server time one tick takes; "gain latency" is the time
from setting the damping widget's value to the first record integrated with it.
"""

from __future__ import annotations

import statistics
import time

import torch


def report(quick: bool = False) -> None:
    torch.set_num_threads(1)
    import panel as pn

    from ..views import Explorer

    seconds = 3.0 if quick else 10.0
    explorer = Explorer(live=False)
    pn.panel(explorer).get_root()  # the Bokeh models exist, as in a served page
    explorer.session.play()
    costs, with_data, ticks = [], 0, 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.1)
        t0 = time.perf_counter()
        before = len(explorer.series.data["t"])
        explorer._tick()
        costs.append(time.perf_counter() - t0)
        ticks += 1
        with_data += len(explorer.series.data["t"]) != before
    elapsed = time.monotonic() - started
    latencies = []
    for value in (1.0, 0.4, 1.5, 0.6, 2.0)[: 3 if quick else 5]:
        trainer = explorer.session.trainer
        t0 = time.perf_counter()
        explorer.settings.damping = value
        while trainer.system.damping != value and time.perf_counter() - t0 < 5:
            time.sleep(0.001)
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.3)
        explorer._tick()
    status = explorer.session.status()
    explorer.close()
    print("explorer (server side, default set-up, 100 ms callback, no browser)")
    print(
        f"  plot updates with new data: {with_data / elapsed:.1f} /s"
        f" ({ticks} ticks in {elapsed:.1f} s)"
    )
    print(
        f"  tick cost: median {1e3 * statistics.median(costs):.1f} ms,"
        f" max {1e3 * max(costs):.1f} ms"
    )
    print(
        "  damping change → in use by the trainer:"
        f" median {1e3 * statistics.median(latencies):.0f} ms,"
        f" max {1e3 * max(latencies):.0f} ms"
    )
    print(f"  training speed meanwhile: {status['steps_per_second']:.0f} intervals/s (cap 40/s)")
