"""The Kick control in the served explorer, driven in headless Chromium as a user would.

Every wait is on a condition read from the page (the status line, the banner, the
button's label), with a generous deadline.
"""

from __future__ import annotations

import os
import re

import pytest
from browsing import open_explorer, shows, wait_until

pytestmark = pytest.mark.browser


def status(page) -> dict[str, float] | None:
    """t, the train loss and H from the status line; None while it is not drawn."""
    found = page.locator(".phviz-status")
    if not found.count():
        return None
    text = found.first.text_content()
    numbers = {}
    for key, label in (("t", r"\bt"), ("loss", "train loss"), ("H", r"\bH")):
        match = re.search(label + r"\s+([-\d.e+]+)", text)
        if not match:
            return None
        numbers[key] = float(match.group(1))
    return numbers


def banner_text(page) -> str:
    found = page.get_by_text("Kicked:")
    return found.first.text_content() if found.count() and found.first.is_visible() else ""


def test_a_kick_while_paused_shows_in_the_banner_and_the_status_line(explorer, page, tmp_path):
    open_explorer(page, explorer)
    start = wait_until(lambda: status(page), "the status line")
    run = page.locator(".phviz-run button")
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Pause", "Run to become Pause")
    moved = lambda: (s := status(page)) and s["t"] > start["t"] + 1.0  # noqa: E731
    wait_until(moved, "t to advance")
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Run", "Pause to become Run")
    before = wait_until(lambda: status(page), "the status line after Pause")

    page.locator(".phviz-kick-section .card-header").first.click()  # built on first expand
    energy = page.locator(".phviz-kick-energy input").first
    energy.fill("1")
    energy.press("Enter")
    page.locator(".phviz-kick button").click()
    text = wait_until(lambda: banner_text(page), "the kick's notice")
    assert "+ΔE = 1 into the momenta (along p)" in text
    after = wait_until(lambda: (s := status(page)) and s["H"] != before["H"] and s, "H to change")
    assert after["t"] == before["t"]  # paused: the kick alone moved H
    assert after["H"] == pytest.approx(before["H"] + 1.0, abs=0.01)
    told = float(re.search(r"H is now ([-\d.e+]+)", text).group(1))
    assert told == pytest.approx(after["H"], rel=1e-3)
    assert run.inner_text().strip() == "Run"

    energy.fill("-1")
    energy.press("Enter")
    page.locator(".phviz-kick button").click()
    wait_until(lambda: shows(page, "Invalid kick energy: -1.0"), "the bad ΔE named")
    assert status(page)["H"] == after["H"]
    shot = os.environ.get("PHVIZ_KICK_SCREENSHOT")
    page.screenshot(path=shot or str(tmp_path / "kick.png"))
