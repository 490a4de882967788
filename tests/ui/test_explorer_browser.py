"""Drives the served explorer in headless Chromium, as a user would.

Every wait is on a condition (the status line's t, a button's label, the pixels of
the plots) with a generous deadline, so the test passes on a loaded machine and
fails only when the condition never comes.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from phviz.bench.serve import CHROMIUM, CHROMIUM_ARGS, free_port
from phviz.bench.serve import serve as launch_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:http://127.0.0.1", "about:")
DEADLINE = 40.0  # seconds any one condition may take on a loaded 2-core machine


def wait_until(condition, what: str, timeout: float = DEADLINE, poll: float = 0.1):
    """``condition()``'s first truthy value, polled until ``timeout``; fails saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


def serve(port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    """``panel serve apps/explorer.py`` as the README runs it (the benchmark's own
    launcher), on a free local port, logging to ``log_path``."""
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    try:
        return launch_server(port, log, *extra)
    except RuntimeError as err:
        raise RuntimeError(f"{err}:\n{log_path.read_text()}") from None


def status_numbers(page) -> tuple[float, float] | None:
    """(t, train loss) from the status line, or None while it is not drawn yet. Its
    text is read whether it is shown or in a tab not shown."""
    status = page.locator(".phviz-status")
    if not status.count():
        return None
    text = status.first.text_content()
    t = re.search(r"\bt\s+([-\d.e+]+)", text)
    loss = re.search(r"train loss\s+([-\d.e+]+)", text)
    if not (t and loss):
        return None
    return float(t.group(1)), float(loss.group(1))


def drive(page) -> None:
    """Run, watch, change the damping, pause, and save the README's screenshot."""
    t0, loss0 = wait_until(lambda: status_numbers(page), "the status line")
    run = page.locator(".phviz-run button")
    assert run.inner_text().strip() == "Run"
    # 10 intervals a second: the horizon (t = 60) stays a minute away however slowly a
    # loaded browser passes on the clicks below.
    page.locator(".phviz-speed select").select_option(label="10 /s")
    timeline = page.locator(".phviz-timeline").first
    timeline.locator("canvas").first.wait_for()
    before = timeline.screenshot()

    # Run: t and the loss move, and the plots are redrawn.
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Pause", "Run to become Pause")
    t1, loss1 = wait_until(
        lambda: (s := status_numbers(page)) and s[0] > t0 + 0.5 and s, "t to advance"
    )
    assert loss1 != loss0
    wait_until(lambda: timeline.screenshot() != before, "the plots to redraw", poll=0.5)

    # A damping change while running reaches the trainer; training goes on.
    damping = page.locator(".phviz-damping input").first
    damping.fill("0.2")
    damping.press("Enter")
    note = page.locator(".phviz-damping-note").first
    wait_until(lambda: "B = 0.2:" in note.inner_text(), "the damping note to say B = 0.2")
    assert "critical damping" in note.inner_text()
    wait_until(lambda: (s := status_numbers(page)) and s[0] > t1 + 1.0, "t to advance after it")
    # Long enough for the landscape trail and a few energy oscillations.
    wait_until(lambda: status_numbers(page)[0] >= 8.0, "t to reach 8", poll=0.3)

    # Pause is a promise: once the button reads Run, nothing on the page moves.
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Run", "Pause to become Run")
    status = page.locator(".phviz-status").first.inner_text()
    pictures = page.locator(".phviz-pictures").first
    shots = timeline.screenshot(), pictures.screenshot()
    page.wait_for_timeout(1500)  # the window in which a moving page would show it
    assert page.locator(".phviz-status").first.inner_text() == status
    assert (timeline.screenshot(), pictures.screenshot()) == shots


def screenshot_path(tmp_path: Path) -> Path:
    """The README's screenshot when PHVIZ_SCREENSHOT names where to write it; else a
    file of this test's own (a test run leaves the working tree as it was)."""
    return Path(os.environ.get("PHVIZ_SCREENSHOT") or tmp_path / "explorer.png")


def launch(sync_api, p):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def test_explorer_runs_and_pauses(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    log_path = tmp_path / "server.log"
    server = serve(port, log_path)
    console, offsite = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(sync_api, p)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.set_default_timeout(DEADLINE * 1000)
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(LOCAL) else offsite.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/explorer")
            try:
                drive(page)
                page.screenshot(path=str(screenshot_path(tmp_path)))
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))  # what the user saw
                raise
            page.close()  # the session is destroyed and its work stops
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert not console, console
    assert not offsite, offsite


def shows(page, text: str) -> bool:
    """Whether ``text`` is on the page and visible (the banner renders in a shadow
    root, which text locators pierce)."""
    found = page.get_by_text(text)
    return found.count() > 0 and found.first.is_visible()


def test_budget_messages_and_a_full_server(tmp_path):
    """A model over the server's budget is refused by name and the banner follows the
    fix; with one place, a second tab is told the server is full, and gets in once
    the first tab has closed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    log_path = tmp_path / "server.log"
    # Closed tabs are noticed within half a second, not Bokeh's default 17 s.
    quick = ["--check-unused-sessions", "500", "--unused-session-lifetime", "500"]
    server = serve(port, log_path, *quick, "--args", "--max-sessions", "1")
    url = f"http://127.0.0.1:{port}/explorer"
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(sync_api, p)
            first = browser.new_page(viewport={"width": 1600, "height": 1000})
            first.set_default_timeout(DEADLINE * 1000)
            first.goto(url)
            wait_until(lambda: status_numbers(first), "the status line")
            hidden = first.locator(".phviz-hidden input").first
            hidden.fill("4000,4000,4000")
            hidden.press("Enter")
            limit = "at most 200,000 parameters on this server"
            wait_until(lambda: shows(first, limit), "the budget message")
            hidden.fill("8")
            hidden.press("Enter")
            wait_until(lambda: shows(first, "Changed hidden widths"), "the banner to follow")
            assert not shows(first, limit)

            second = browser.new_page()
            second.goto(url)
            second.locator(".phviz-full").first.wait_for()
            wait_until(lambda: shows(second, "This server is full"), "the full-server page")
            assert not second.locator(".phviz-run").count()
            second.close()

            first.close()  # its place is freed once the server notices

            def admitted() -> bool:
                third = browser.new_page()
                third.goto(url)
                third.locator(".phviz-run, .phviz-full").first.wait_for()
                ok = third.locator(".phviz-run").count() > 0
                third.close()
                return ok

            wait_until(admitted, "a place after the first tab closed", poll=0.5)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    log = log_path.read_text()
    assert "Traceback" not in log, log
