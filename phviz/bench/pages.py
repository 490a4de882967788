"""Serving the explorer and reading its pages, for the benchmarks and the browser tests.

``serve`` runs ``panel serve apps/explorer.py`` as the README does; ``open_page``
opens a page in headless Chromium with ``PAGE_PROBE``, which records every change of
the status line with the page's own clock (and counts frames while asked to), so
what a page showed, and when, is read from the page itself. Only the public page is
used (the ``.phviz-run``, ``.phviz-status`` and ``.phviz-speed`` handles).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_MS = 120_000  # any one condition, on a loaded machine with many pages

# Records (once the status line exists) every change of its text with the page's
# clock and the t it shows, and counts animation frames while asked to. Panel draws
# inside shadow roots, so elements are looked up through them, once: the probe must
# not load the machine it measures (twenty pages walking their DOMs five times a
# second, and drawing frames only to count them, took a share of the cores).
PAGE_PROBE = """
(() => {
  const probe = {frames: 0, counting: false, changes: [], text: null, root: null,
                 t: NaN, tChanged: null, found: {}};
  window.__phvizProbe = probe;
  const frame = () => {
    if (!probe.counting) return;
    probe.frames += 1;
    requestAnimationFrame(frame);
  };
  probe.countFrames = (on) => {
    const was = probe.counting;
    probe.counting = on;
    if (on && !was) requestAnimationFrame(frame);
  };
  const find = (root, selector) => {
    const hit = root.querySelector(selector);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) {
        const inner = find(el.shadowRoot, selector);
        if (inner) return inner;
      }
    }
    return null;
  };
  probe.find = (selector) => {  // kept while it stays in the page
    const kept = probe.found[selector];
    if (kept && kept.isConnected) return kept;
    return (probe.found[selector] = find(document, selector));
  };
  const count = (root, selector) => {
    let n = root.querySelectorAll(selector).length;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) n += count(el.shadowRoot, selector);
    }
    return n;
  };
  probe.count = (selector) => count(document, selector);
  probe.runButton = () => {
    const kept = probe.found.runButton;
    if (kept && kept.isConnected) return kept;
    const host = probe.find('.phviz-run');
    if (!host) return null;
    return (probe.found.runButton =
      host.querySelector('button') || (host.shadowRoot && find(host.shadowRoot, 'button')));
  };
  const read = () => {
    const el = probe.root && probe.root.querySelector('.phviz-status');
    const text = el ? el.textContent : null;
    if (text === null || text === probe.text) return;
    probe.text = text;
    const m = /\\bt\\s+([-\\d.e+]+)/.exec(text);
    const now = performance.now(), t = m ? parseFloat(m[1]) : NaN;
    if (t !== probe.t) { probe.t = t; probe.tChanged = now; }
    probe.changes.push([now, t]);
  };
  const observer = new MutationObserver(read);
  const attach = () => {
    const kept = probe.root;
    if (kept && kept.isConnected && kept.querySelector('.phviz-status')) return;
    const el = probe.find('.phviz-status');
    if (!el) return;
    const root = el.getRootNode();
    if (root === probe.root) return;
    probe.root = root;
    observer.disconnect();
    observer.observe(root, {childList: true, subtree: true, characterData: true});
    read();
  };
  setInterval(attach, 200);
})();
"""

READY = """() => {
  const p = window.__phvizProbe;
  const run = p && p.runButton();
  return !!(run && run.textContent.trim() === 'Run' && p.text && /\\bt\\s/.test(p.text));
}"""

# The six figures drawn in place of their rows' placeholders.
PLOTS = """() => {
  const p = window.__phvizProbe;
  return p.count('.phviz-drawing') === 0 && p.count('canvas') >= 6;
}"""

# A press as a person makes it: the page notes what it showed (t, and when), and the
# caller clicks the mouse at the centre this returns of the button in ``name``'s element.
PRESS_AT = """(name) => {
  const p = window.__phvizProbe
  const host = p.find(name)
  const button = host.querySelector('button') || host.shadowRoot.querySelector('button')
  p.pressedT = p.t
  p.pressedAt = performance.now()
  const box = button.getBoundingClientRect()
  return [box.x + box.width / 2, box.y + box.height / 2]
}"""

# What a tab shows now: the Run/Pause label, t, and seconds since t last changed.
SHOWN = """() => {
  const p = window.__phvizProbe
  const run = p.runButton()
  const label = run ? run.textContent.trim() : null
  return [label, p.t, (performance.now() - (p.tChanged ?? 0)) / 1000]
}"""

_LABEL = "(p => { const run = p.runButton(); return run ? run.textContent.trim() : null })"

# Whether the last press was acted on, each read in the page:
# Run: the button reads Pause and t has moved on since the press.
RUNS = f"""() => {{
  const p = window.__phvizProbe
  return {_LABEL}(p) === 'Pause' && p.t > p.pressedT
}}"""

# Pause: the button reads Run and t has not changed for ``quiet`` ms since the press
# (nor since it last changed); the t it stands at is kept (``stoodT``).
STANDS = f"""([quiet]) => {{
  const p = window.__phvizProbe
  if ({_LABEL}(p) !== 'Run') return false
  const last = Math.max(p.tChanged ?? 0, p.pressedAt)
  if (performance.now() - last < quiet) return false
  p.stoodT = p.t
  return true
}}"""

# Still standing: the button reads Run and t is where it stood.
STILL = f"""() => {{
  const p = window.__phvizProbe
  return {_LABEL}(p) === 'Run' && p.t === p.stoodT
}}"""

# Step: the button reads Run and t is one switching interval on.
STEPPED = f"""([interval]) => {{
  const p = window.__phvizProbe
  return {_LABEL}(p) === 'Run' && Math.abs(p.t - (p.pressedT + interval)) < 0.006
}}"""

# Reset: the button reads Run and t is 0.
RESET = f"""() => {{
  const p = window.__phvizProbe
  return {_LABEL}(p) === 'Run' && p.t === 0
}}"""

# Updates keep coming while it runs: t has changed ``n`` times since the press.
TRAINED = """([n]) => {
  const p = window.__phvizProbe
  return p.changes.filter(([at, t]) => at > p.pressedAt && t !== p.pressedT).length >= n
}"""


class Overdue(Exception):
    """A condition that did not come within its deadline."""


@contextlib.contextmanager
def waiting(what: str):
    """Turn a Playwright timeout into ``Overdue`` naming what was awaited."""
    from playwright.sync_api import Error

    try:
        yield
    except Error as err:
        raise Overdue(f"{what} ({str(err).splitlines()[0]})") from err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    port: int, log, *extra: str, root: Path = ROOT, own_session: bool = False
) -> subprocess.Popen:
    """``panel serve apps/explorer.py`` as the README runs it, with ``extra`` arguments,
    writing to the open file ``log``; returns once it listens.

    ``root``: the checkout whose app and ``phviz`` it serves (another than this one's
    for a comparison). ``own_session``: start it in a session of its own, as a service
    runs. Where the kernel shares the cores between sessions (Linux's autogroup
    scheduling), the caller's own work then does not come out of the server's share."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if Path(root).resolve() != ROOT:  # its own phviz, not the one installed
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(root).resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "apps/explorer.py",
            "--warm",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{port}",
            *extra,
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=own_session,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("panel serve exited before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("panel serve did not listen within 120 s")


HOLD_MS = 100  # between a person's pointerdown and pointerup


def press(page, name: str) -> None:
    """A mouse click at the centre of the button in the element named ``name``
    (``.phviz-run``, ``.phviz-step``, ``.phviz-reset``), noted in the page's probe,
    held down as long as a person holds it: a page that rebuilds the button meanwhile
    loses the click, as it would a person's."""
    x, y = page.evaluate(PRESS_AT, name)
    page.mouse.click(x, y, delay=HOLD_MS)


def shown(page) -> str:
    """What a tab shows now, in words (for a report of a press not acted on)."""
    label, t, still = page.evaluate(SHOWN)
    return f"reads {label}, t {t:g}, t unchanged for {still:.1f} s"


def acted(pages, condition: str, arg=None, deadline_ms: float = DEADLINE_MS) -> list[int]:
    """Wait until each page in ``pages`` shows ``condition``, all within one
    ``deadline_ms`` from now; returns the indices of those that did not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    end = time.monotonic() + deadline_ms / 1000
    missed = []
    for i, page in enumerate(pages):
        left = (end - time.monotonic()) * 1000
        if left > 0:
            try:
                page.wait_for_function(condition, arg=arg, polling=50, timeout=left)
                continue
            except PlaywrightTimeout:
                pass
        if not page.evaluate(condition, arg):  # past the deadline: as it stands now
            missed.append(i)
    return missed


def stop(server: subprocess.Popen, timeout: float = 60.0) -> tuple[float, list[int]]:
    """SIGTERM to ``server``, as a service manager sends it; returns the seconds until
    it and every process it started had gone, and the processes still running after
    ``timeout`` s (which are then killed)."""
    tree = [psutil.Process(server.pid)]
    with contextlib.suppress(psutil.Error):
        tree += tree[0].children(recursive=True)
    ends: list[float] = []
    started = time.monotonic()
    server.terminate()
    _, left = psutil.wait_procs(
        tree, timeout=timeout, callback=lambda _: ends.append(time.monotonic())
    )
    took = (max(ends) if ends and not left else time.monotonic()) - started
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(10)
    return took, [p.pid for p in left]


def open_page(browser, url: str, deadline_ms: float = DEADLINE_MS):
    """A new page on ``url``; returns it with its seconds until ready and until its
    plots are drawn."""
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.set_default_timeout(deadline_ms)
    page.add_init_script(PAGE_PROBE)
    start = time.perf_counter()
    with waiting("page ready"):
        page.goto(url)
        page.wait_for_function(READY, polling=50)
    ready = time.perf_counter() - start
    with waiting("the plots"):
        page.wait_for_function(PLOTS, polling=50)
    return page, ready, time.perf_counter() - start


def yield_to_server() -> None:
    """Give the browser's processes (its pages' renderers among them) the lowest
    priority, every thread of them: on Linux a process's niceness is its main
    thread's, and Chromium runs its compositing and input threads at its own
    priorities (some above the server's). The pages stand in for a class's own
    machines: on this one they should take only the cores the server leaves. (At
    equal priority, twenty pages' renderers took 1.75 of two cores and left the
    server a quarter of one.) Under autogroup scheduling this ranks the browser's
    processes only among themselves. Called again before each measurement, for the
    threads started meanwhile."""
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in proc.name():
                for thread in proc.threads():
                    with contextlib.suppress(OSError):
                        os.setpriority(os.PRIO_PROCESS, thread.id, 19)


class CoresUsed:
    """Cores busy between ``start()`` and ``stop()``: the process ``pid``'s own (all its
    threads) and the whole machine's; and the seconds per second its main thread (the
    server's event loop, which reads every tab's clicks) spent ready to run but waiting
    for a core (Linux's schedstat; NaN where there is none)."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.schedstat = Path(f"/proc/{pid}/task/{pid}/schedstat")

    @staticmethod
    def _busy(times) -> float:
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _queued(self) -> float:
        """Seconds the main thread has waited on a run queue so far."""
        try:
            return int(self.schedstat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return math.nan

    def start(self) -> None:
        own = self.process.cpu_times()
        self._own, self._all = own.user + own.system, self._busy(psutil.cpu_times())
        self._queue = self._queued()
        self._wall = time.monotonic()

    def stop(self) -> tuple[float, float, float]:
        own = self.process.cpu_times()
        span = time.monotonic() - self._wall
        return (
            (own.user + own.system - self._own) / span,
            (self._busy(psutil.cpu_times()) - self._all) / span,
            (self._queued() - self._queue) / span,
        )


def autogroup_scheduling() -> bool:
    """Whether the kernel shares the cores between sessions before processes."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False
