"""Presses lost, and a server's stop: ``python -m phviz.bench.presses [--tabs 6]``.

A class presses Run and Pause in many tabs on one server. This serves the explorer as
the README does, opens ``--tabs`` tabs and, each round, presses Run on every tab in
turn (a mouse click at the button's centre), lets them train ``--train`` seconds, and
presses Pause on every tab in turn. A press is lost when its tab has not done what it
asked ``--grace`` seconds after the round's last press (after Run the button reads
Pause and t moves on; after Pause it reads Run and t stands still) nor a minute later;
one done between the two is late. A lost press is pressed again, uncounted, until the
tab does what it asked, so the next round starts from a known state. At the end
every tab runs again and the server gets SIGTERM; the seconds until it and every
process it started have gone are printed too.

``--root DIR`` serves another checkout's app with its own ``phviz`` (a comparison).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEADLINE_MS,
    PAGE_PROBE,
    READY,
    ROOT,
    RUNS,
    STANDS,
    acted,
    free_port,
    press,
    serve,
    shown,
    stop,
)

QUIET_MS = 800  # t unchanged this long after Pause: the run stands


def open_tabs(browser, url: str, tabs: int) -> list:
    """``tabs`` pages on ``url``, each with the probe, once each shows the Run button."""
    pages = []
    for _ in range(tabs):
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(DEADLINE_MS)
        page.add_init_script(PAGE_PROBE)
        page.goto(url)
        page.wait_for_function(READY, polling=50)
        pages.append(page)
    return pages


def press_all(pages, condition: str, arg, grace: float) -> tuple[list[str], list[str]]:
    """Press Run/Pause on each page in turn. Returns the pages that had not done what
    was asked ``grace`` s after the last press but did within a minute (late), and
    those that had not by then (lost), each with what it showed at ``grace``; a lost
    press is pressed again until its page has done what it asked."""
    for page in pages:
        press(page, ".phviz-run")
    missed = acted(pages, condition, arg, deadline_ms=grace * 1000)
    said = {i: f"tab {i}: {shown(pages[i])}" for i in missed}
    lost = [missed[j] for j in acted([pages[i] for i in missed], condition, arg, 60_000)]
    for i in lost:
        for _ in range(5):
            press(pages[i], ".phviz-run")
            if not acted([pages[i]], condition, arg, deadline_ms=grace * 1000):
                break
    return [said[i] for i in missed if i not in lost], [said[i] for i in lost]


def measure(
    tabs: int, rounds: int, train: float, grace: float, extra=(), root: Path = ROOT
) -> dict:
    """Presses sent, lost and late (with what each such tab showed), and the stop."""
    from playwright.sync_api import sync_playwright

    sent, lost, late = 0, [], []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        with open(Path(tmp) / "server.log", "w") as log:
            server = serve(port, log, *extra, root=root, own_session=True)
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                url = f"http://127.0.0.1:{port}/explorer?horizon=1000000"
                pages = open_tabs(browser, url, tabs)
                for r in range(rounds):
                    for name, condition, arg in (
                        ("Run", RUNS, None),
                        ("Pause", STANDS, [QUIET_MS]),
                    ):
                        if name == "Pause":
                            time.sleep(train)  # the tabs train, as a lesson's do
                        slow, gone = press_all(pages, condition, arg, grace)
                        sent += len(pages)
                        late += [f"round {r + 1} {name}, {s}" for s in slow]
                        lost += [f"round {r + 1} {name}, {s}" for s in gone]
                        print(
                            f"round {r + 1} {name}: {len(gone)} of {len(pages)} lost,"
                            f" {len(slow)} late",
                            *gone,
                            *slow,
                            sep="\n  ",
                        )
                for page in pages:  # every tab trains while the server is stopped
                    press(page, ".phviz-run")
                acted(pages, RUNS)
                seconds, left = stop(server)
            finally:
                browser.close()
                if server.poll() is None:
                    server.kill()
    return dict(sent=sent, lost=lost, late=late, stop=seconds, left=left)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phviz.bench.presses", description=__doc__)
    parser.add_argument("--tabs", type=int, default=6, help="tabs on the server")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of Run and Pause")
    parser.add_argument("--train", type=float, default=20.0, help="seconds the tabs train")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds a press may take")
    parser.add_argument("--num-procs", type=int, default=1, help="server processes")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--markdown", metavar="DIR", help="also write the table into DIR")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"skipped: no Chromium at {CHROMIUM}")
        return
    extra = ("--num-procs", str(args.num_procs)) if args.num_procs > 1 else ()
    found = measure(args.tabs, args.rounds, args.train, args.grace, extra, args.root)
    lost, late = len(found["lost"]), len(found["late"])
    print(f"lost {lost} of {found['sent']} presses; {late} more acted on after {args.grace:g} s")
    gone = "all gone" if not found["left"] else f"still running: {found['left']}"
    print(f"SIGTERM with {args.tabs} tabs training: {found['stop']:.2f} s ({gone})")
    if args.markdown:
        from .markdown import write_table

        path = write_table(
            f"serve-presses-{args.tabs}-tabs-{args.num_procs}-procs",
            f"Presses with {args.tabs} tabs training on {args.num_procs} server process(es)",
            ("tabs", "processes", "presses", "lost", f"late (> {args.grace:g} s)", "stop (s)"),
            [[args.tabs, args.num_procs, found["sent"], lost, late, found["stop"]]],
            directory=args.markdown,
            notes=(
                f"{args.rounds} rounds: Run pressed on every tab in turn (a mouse click at "
                f"the button's centre), {args.train:g} s of training, Pause on every tab in "
                f"turn. Lost: not done a minute after the round's last press. Stop: seconds "
                f"from SIGTERM, with every tab training, until the server and every process "
                f"it started had gone."
            ),
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
