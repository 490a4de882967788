"""Drives the served explorer in headless Chromium, as a user would.

Every wait is on a condition (the status line's t, a button's label, the pixels of
the plots) with a generous deadline, so the test passes on a loaded machine and
fails only when the condition never comes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browsing import DEADLINE, open_explorer, served, shows, status_numbers, wait_until

pytestmark = pytest.mark.browser

SCROLL_TO_TOP = """() => {
  window.scrollTo(0, 0)
  for (const e of document.querySelectorAll('*')) if (e.scrollTop) e.scrollTop = 0
}"""


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


def test_explorer_runs_and_pauses(explorer, page, tmp_path):
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_explorer(page, explorer)
    drive(page)
    # the clicks above scrolled the page; the screenshot shows it from its top
    page.evaluate(SCROLL_TO_TOP)
    page.locator(".phviz-status").first.wait_for(state="visible")
    page.screenshot(path=str(screenshot_path(tmp_path)))


def test_budget_messages_and_a_full_server(browser, tmp_path):
    """A model over the server's budget is refused by name and the banner follows the
    fix; with one place, a second tab is told the server is full, and gets in once
    the first tab has closed."""
    # Closed tabs are noticed within half a second, not Bokeh's default 17 s.
    quick = ["--check-unused-sessions", "500", "--unused-session-lifetime", "500"]
    with served(tmp_path / "server.log", *quick, "--args", "--max-sessions", "1") as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(DEADLINE * 1000)
        open_explorer(page, url)
        wait_until(lambda: status_numbers(page), "the status line")
        hidden = page.locator(".phviz-hidden input").first
        hidden.fill("4000,4000,4000")
        hidden.press("Enter")
        limit = "at most 200,000 parameters on this server"
        wait_until(lambda: shows(page, limit), "the budget message")
        hidden.fill("8")
        hidden.press("Enter")
        wait_until(lambda: shows(page, "Changed hidden widths"), "the banner to follow")
        assert not shows(page, limit)

        second = browser.new_page()
        second.goto(url)
        second.locator(".phviz-full").first.wait_for()
        wait_until(lambda: shows(second, "This server is full"), "the full-server page")
        assert not second.locator(".phviz-run").count()
        second.close()

        page.close()  # its place is freed once the server notices

        def admitted() -> bool:
            third = browser.new_page()
            third.goto(url)
            third.locator(".phviz-run, .phviz-full").first.wait_for()
            ok = third.locator(".phviz-run").count() > 0
            third.close()
            return ok

        wait_until(admitted, "a place after the first tab closed", poll=0.5)
