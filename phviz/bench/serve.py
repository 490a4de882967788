"""The served explorer, measured from real browser pages over loopback.

``panel serve apps/explorer.py`` runs in a subprocess as the README serves it, and
headless Chromium (through Playwright) opens pages on it as users would. For 1, 6
and 20 sessions (pages of one browser, each pressing Run) it measures, in one run:

- page ready: from navigation until the Run button and the status line are shown,
  cold (the first page on a fresh server) and warm (later pages); and until the plots
  are drawn (the figures follow the page's first update);
- frames drawn per second while training (requestAnimationFrame callbacks counted
  in the page);
- status-line updates per second per session (a MutationObserver in the page);
- training throughput: the sum over sessions of the status line's t gained per
  second, each between the last changes before the window's start and its end (a
  window's Δt alone undercounts a page that shows few updates in it);
- Pause latency: from the press on Pause (a mouse click where the button is, timed
  by the input event's own time stamp) until the button reads Run and t stands still;
- the cores the server process used over the window, and those the whole machine
  used; and how long the server's event loop, which reads every tab's clicks, was
  ready to run but waited for a core (seconds per second, from Linux's schedstat).
  Server and browser share this machine's cores, while in a class the pages run on
  the students' own machines. The browser's processes are set to the lowest
  priority (nice 19) and the server runs in a session of its own, as a service
  does. Where Linux shares the cores between sessions first (autogroup scheduling,
  which the report names), nice orders only the processes of one session: the
  browser, the server and the bench then take about equal shares of a busy
  machine, and the browser does not yield to the server.

Only the public page is used (the ``.phviz-run``, ``.phviz-status`` and
``.phviz-speed`` handles), so the figures stay comparable whatever the server does
behind them. Waits are on conditions; only the measuring windows are fixed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import psutil

from .pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEADLINE_MS,
    CoresUsed,
    Overdue,
    autogroup_scheduling,
    free_port,
    open_page,
    serve,
    waiting,
    yield_to_server,
)

# The pages' runs go on until Pause: the default set-up stops at T = 60, which a tab
# can reach before its turn to be paused comes, and a click then is Run's.
HORIZON = 1_000_000
QUIET_MS = 1000  # t unchanged this long after Pause counts as stopped

LABEL = """(label) => {
  const run = window.__phvizProbe.runButton();
  return !!run && run.textContent.trim() === label;
}"""

SNAPSHOT = """() => {
  const p = window.__phvizProbe;
  const last = p.changes[p.changes.length - 1] || [performance.now(), NaN];
  return {now: performance.now(), frames: p.frames, changes: p.changes.length,
          t: last[1], last_change: last[0]};
}"""

# Marks, in the page's own clock, the moment of the next press on the button
# (the input event's time stamp: when the press reached the page, before any wait
# behind the page's other work) and the moment its label next changes (a mutation,
# recorded as the page applies it, not when a poll comes round to look).
MARK_PRESS = """() => {
  const p = window.__phvizProbe, run = p.runButton();
  p.pressedAt = null; p.labelAt = null;
  const label = run.textContent.trim();
  const press = (e) => { p.pressedAt = e.timeStamp };
  document.addEventListener('pointerdown', press, {capture: true, once: true});
  const seen = new MutationObserver(() => {
    if (run.textContent.trim() === label) return;
    p.labelAt = performance.now();
    seen.disconnect();
  });
  seen.observe(run, {childList: true, subtree: true, characterData: true});
  const box = run.getBoundingClientRect();
  return [box.x + box.width / 2, box.y + box.height / 2];
}"""

# True once the button reads Run and t has not changed for QUIET_MS since the press;
# then the later of the label's change and t's last change.
STOPPED = """([quiet]) => {
  const p = window.__phvizProbe;
  const run = p.runButton();
  if (p.pressedAt == null || !run || run.textContent.trim() !== 'Run') return false;
  const now = performance.now();
  const label = p.labelAt == null ? now : p.labelAt;
  const last = p.tChanged == null ? p.pressedAt : Math.max(p.tChanged, p.pressedAt);
  if (now - last < quiet) return false;
  return Math.max(label, last) - p.pressedAt;
}"""


def press(page, label_after: str) -> None:
    with waiting(f"the button to read {label_after}"):
        page.locator(".phviz-run button").click()
        page.wait_for_function(LABEL, arg=label_after, polling=50)


# The t a page has gained per second: between its last status change at or before
# ``start`` and its last at or before ``end`` (performance.now() times), or null
# while fewer than two changes bracket the window.
RATE = """([start, end]) => {
  const c = window.__phvizProbe.changes.filter(([time, t]) => !isNaN(t));
  const last = (until) => {
    let hit = null;
    for (const x of c) if (x[0] <= until) hit = x;
    return hit;
  };
  const a = last(start), b = last(end);
  if (!a || !b || b[0] <= a[0]) return null;
  return (b[1] - a[1]) / ((b[0] - a[0]) / 1000);
}"""


def training_window(pages, seconds: float) -> list[dict]:
    """Frames, status changes and t gained per second per page over one window of
    ``seconds`` (longer, up to six times, for pages that showed no change in it)."""
    for page in pages:
        page.evaluate("window.__phvizProbe.countFrames(true)")
    first = [p.evaluate(SNAPSHOT) for p in pages]
    time.sleep(seconds)  # the measuring window
    last = [p.evaluate(SNAPSHOT) for p in pages]
    deadline = time.monotonic() + 5 * seconds
    while time.monotonic() < deadline and any(
        b["changes"] == a["changes"] for a, b in zip(first, last, strict=True)
    ):
        time.sleep(0.5)  # a page this slow needs a longer window to show a rate
        last = [p.evaluate(SNAPSHOT) for p in pages]
    for page in pages:
        page.evaluate("window.__phvizProbe.countFrames(false)")
    out = []
    for page, a, b in zip(pages, first, last, strict=True):
        span = (b["now"] - a["now"]) / 1000
        rate = page.evaluate(RATE, [a["now"], b["now"]])
        out.append(
            {
                "fps": (b["frames"] - a["frames"]) / span,
                "updates": (b["changes"] - a["changes"]) / span,
                "rate": 0.0 if rate is None else rate,
                "span": span,
            }
        )
    return out


def pause_latency(page) -> float:
    """Seconds from the press on Pause until the button reads Run and t stands still.

    The press is a mouse click where the button is, as a user's: a locator's click
    first waits for the button to stand still over two animation frames, which on a
    starved page took up to seconds before any click happened."""
    if not page.evaluate(LABEL, "Pause"):  # a click now would be Run's
        raise Overdue("the button to read Pause before the click (the run stopped itself)")
    with waiting("Pause to show Run and t to stand still"):
        x, y = page.evaluate(MARK_PRESS)
        page.mouse.click(x, y)
        stopped = page.wait_for_function(STOPPED, arg=[QUIET_MS], polling=50)
    return stopped.json_value() / 1000


def measure(sessions: tuple[int, ...], window: float):
    """One row per session count, each on a fresh server and browser, yielded as it is
    measured; a count the machine cannot serve yields its error instead."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        for n in sessions:
            port = free_port()
            with open(Path(tmp) / f"server-{n}.log", "w") as log:
                server = serve(port, log, own_session=True)
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    url = f"http://127.0.0.1:{port}/explorer?horizon={HORIZON}"
                    row = _measure_sessions(browser, url, n)
                    row.update(_measure_training(row.pop("pages"), window, server.pid))
                except Overdue as err:  # say what never came, and go on
                    row = {"sessions": n, "error": f"waited past the deadline for {err}"}
                finally:
                    browser.close()
                    server.terminate()
                    server.wait(20)
            yield row


def _measure_sessions(browser, url: str, n: int) -> dict:
    pages, ready, plots = [], [], []
    deadline_ms = max(DEADLINE_MS, 15_000 * n)  # many busy pages answer slowly
    for _ in range(n):
        page, seconds, drawn = open_page(browser, url, deadline_ms)
        yield_to_server()  # this page's renderer too
        pages.append(page)
        ready.append(seconds)
        plots.append(drawn)
    return {
        "sessions": n,
        "cold": ready[0],
        "warm": ready[1:],
        "plots_cold": plots[0],
        "plots_warm": plots[1:],
        "pages": pages,
    }


def _measure_training(pages, window: float, server_pid: int) -> dict:
    for page in pages:
        press(page, "Pause")
    for page in pages:  # every session has drawn a few updates since its Run
        with waiting("a session's first updates"):
            page.wait_for_function(
                "(n) => window.__phvizProbe.changes.length > n",
                arg=page.evaluate("window.__phvizProbe.changes.length") + 3,
                polling=50,
            )
    yield_to_server()
    cores = CoresUsed(server_pid)
    cores.start()
    stats = training_window(pages, window)
    server_cores, all_cores, loop_wait = cores.stop()
    yield_to_server()
    latencies = [pause_latency(page) for page in pages]
    return {
        "fps": statistics.median(s["fps"] for s in stats),
        "fps_min": min(s["fps"] for s in stats),
        "updates": statistics.median(s["updates"] for s in stats),
        "throughput": sum(s["rate"] for s in stats),
        "pause": statistics.median(latencies),
        "pause_max": max(latencies),
        "server_cores": server_cores,
        "all_cores": all_cores,
        "loop_wait": loop_wait,
    }


HEADER = (
    f"{'sessions':>8} {'ready cold':>10} {'ready warm':>10} {'plots cold':>10} "
    f"{'plots warm':>10} {'frames/s':>9} {'(min)':>6} "
    f"{'updates/s':>9} {'t per s':>8} {'Pause':>7} {'(max)':>6} {'server':>6} {'all':>5} "
    f"{'loop wait':>9}"
)


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['sessions']:>8}  not measured: {r['error']}"
    warm = f"{statistics.median(r['warm']):.2f} s" if r["warm"] else "–"
    plots = f"{statistics.median(r['plots_warm']):.2f} s" if r["plots_warm"] else "–"
    return (
        f"{r['sessions']:>8} {r['cold']:>8.2f} s {warm:>10} {r['plots_cold']:>8.2f} s {plots:>10} "
        f"{r['fps']:>9.1f} "
        f"{r['fps_min']:>6.1f} {r['updates']:>9.1f} {r['throughput']:>8.2f} "
        f"{r['pause']:>5.2f} s {r['pause_max']:>4.2f} s "
        f"{r['server_cores']:>6.2f} {r['all_cores']:>5.2f} {r['loop_wait']:>7.2f} s"
    )


def report(quick: bool = False) -> None:
    if not Path(CHROMIUM).exists():
        print(f"skipped: no Chromium at {CHROMIUM}")
        return
    sessions, window = ((1, 3), 5.0) if quick else ((1, 6, 20), 10.0)
    priority = (
        ": autogroup scheduling is on, so the two share a busy machine about evenly"
        if autogroup_scheduling()
        else ""
    )
    print(
        "served explorer (panel serve apps/explorer.py), headless Chromium pages on one "
        "browser over loopback (the pages stand in for a class's own machines; the "
        "browser at nice 19, the server in a session of its own"
        f"{priority}), default settings, {window:g} s window; medians over "
        "sessions; frames/s by requestAnimationFrame, updates/s = status-line changes, "
        "t per s = training time gained by all sessions together per wall second, "
        "Pause = from the press (its input event's time stamp) until Run shows and t is "
        f"still ({QUIET_MS} ms quiet not counted); "
        f"server, all = cores busy over the window in the server process and on the "
        f"whole machine (of {psutil.cpu_count()}); loop wait = seconds per second the "
        "server's event loop was ready to run and waited for a core"
    )
    print(HEADER, flush=True)
    for row in measure(sessions, window):
        print(format_row(row), flush=True)
