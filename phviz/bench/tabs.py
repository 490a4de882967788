"""Server memory as tabs come and go: ``python -m phviz.bench.tabs [--tabs 100]``.

Serves the explorer as the README does and opens tabs one after another, as a class
reloading its pages does: each trains a few seconds (``?run=1``) and is closed.
Prints the server's resident memory (all its processes together) after the first
tab, after every tenth, and a while after the last has closed, when the server has
dropped the closed tabs' sessions: what should stay flat is the growth per tab.
``--root DIR`` serves another checkout (with its own ``phviz``), for a comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from .pages import CHROMIUM, CHROMIUM_ARGS, DEADLINE_MS, PAGE_PROBE, ROOT, free_port, serve

STATUS_T = """() => {
  const p = window.__phvizProbe
  return !!p && p.t > 0
}"""


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` and its children, in MiB."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


def measure(
    tabs: int, train: float, after: float, extra: tuple[str, ...] = (), root: Path = ROOT
) -> list:
    """(tabs opened and closed, seconds since the start, MiB) along the way, the last
    ``after`` seconds after the last tab closed; ``root`` is the checkout served."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        with open(Path(tmp) / "server.log", "w") as log:
            server = serve(port, log, *extra, root=root, own_session=True)
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            started = time.monotonic()
            try:
                rows.append((0, 0.0, rss_mib(server.pid)))
                for tab in range(1, tabs + 1):
                    page = browser.new_page(viewport={"width": 1920, "height": 1080})
                    page.set_default_timeout(DEADLINE_MS)
                    page.add_init_script(PAGE_PROBE)
                    page.goto(f"http://127.0.0.1:{port}/explorer?run=1")
                    page.wait_for_function(STATUS_T, polling=100)  # it trains
                    time.sleep(train)  # the tab trains, as a visit does
                    page.close()
                    if tab == 1 or tab % 10 == 0:
                        rows.append((tab, time.monotonic() - started, rss_mib(server.pid)))
                        print(f"{rows[-1][0]:>5} {rows[-1][1]:>8.0f} s {rows[-1][2]:>8.0f} MiB")
                time.sleep(after)  # the server drops the closed tabs' sessions
                rows.append((tabs, time.monotonic() - started, rss_mib(server.pid)))
            finally:
                browser.close()
                server.terminate()
                server.wait(20)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phviz.bench.tabs", description=__doc__)
    parser.add_argument("--tabs", type=int, default=100, help="tabs opened and closed")
    parser.add_argument("--train", type=float, default=3.0, help="seconds each tab trains")
    parser.add_argument("--after", type=float, default=45.0, help="seconds to wait at the end")
    parser.add_argument("--num-procs", type=int, default=1, help="server processes")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--markdown", metavar="DIR", help="also write the table into DIR")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"skipped: no Chromium at {CHROMIUM}")
        return
    extra = ("--num-procs", str(args.num_procs)) if args.num_procs > 1 else ()
    print(f"{'tabs':>5} {'time':>10} {'server RSS':>12}")
    rows = measure(args.tabs, args.train, args.after, extra, args.root)
    tab, seconds, mib = rows[-1]
    print(f"{args.after:g} s after the last of {tab} tabs closed: {mib:.0f} MiB ({seconds:.0f} s)")
    if args.markdown:
        from .markdown import write_table

        body = [[f"{n} closed", round(t), mib] for n, t, mib in rows[:-1]]
        body.append([f"{args.after:g} s after the last", round(seconds), mib])
        processes = "one process" if args.num_procs == 1 else f"{args.num_procs} processes"
        path = write_table(
            "serve-tabs",
            f"Server memory as {args.tabs} tabs come and go ({processes})",
            ("tabs", "seconds since the start", "server RSS (MiB)"),
            body,
            directory=args.markdown,
            notes=(
                f"Tabs opened one after another in headless Chromium, each training "
                f"{args.train:g} s (`?run=1`) and then closed; the resident memory of the "
                f"server and every process it started, after the first tab, every tenth, "
                f"and {args.after:g} s after the last closed."
            ),
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
