"""The Modes tab in headless Chromium: the density draws, its colours follow the
damping across the critical value, and an autopilot button sets the damping its note
names in the sidebar. Every wait is on a condition."""

from __future__ import annotations

import re

import pytest
from browsing import DEADLINE, open_explorer, status_numbers, wait_until

from phviz.views.modespresent import REGIME_COLOURS

pytestmark = pytest.mark.browser

# The density's bar colours as the page holds them (null before the tab is drawn).
BAR_COLOURS = """() => {
  const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  const bars = doc && doc.get_model_by_name("phviz-modes-density");
  return bars && bars.data.color ? Array.from(bars.data.color) : null;
}"""


def bar_colours(page) -> list[str]:
    return page.evaluate(BAR_COLOURS) or []


def set_damping(page, value: float) -> None:
    """Type ``value`` into the sidebar's damping box, as a user does."""
    box = page.locator(".phviz-damping input").first
    box.fill(f"{value:g}")
    box.press("Enter")


def damping_shown(page) -> float:
    return float(page.locator(".phviz-damping input").first.input_value())


def autopilot_said(page) -> float | None:
    note = page.locator(".phviz-autopilot-said")
    if not note.count():
        return None
    found = re.search(r"damping ([\d.e+-]+):", note.first.inner_text())
    return float(found.group(1)) if found else None


def test_the_modes_tab_colours_by_regime_and_its_autopilot_sets_the_damping(explorer, page):
    open_explorer(page, explorer)
    wait_until(lambda: status_numbers(page), "the status line")
    page.get_by_text("Modes", exact=True).first.click()
    page.wait_for_function(f"() => ({BAR_COLOURS})()?.length > 0", timeout=3 * DEADLINE * 1000)
    assert page.locator(".phviz-modes canvas").count() >= 3  # density, saddles, motion

    ringing, creeping = REGIME_COLOURS["oscillating"], REGIME_COLOURS["creeping"]
    # Far below critical for the stiffest mode (μ about 1.8 here): it rings.
    set_damping(page, 0.02)
    wait_until(
        lambda: (c := bar_colours(page)) and c[-1] == ringing,
        "the stiffest bar to show the oscillating colour",
    )
    # Far above it (μ_c = B²/4M = 25 beyond every mode): everything creeps.
    set_damping(page, 10)
    wait_until(
        lambda: (c := bar_colours(page)) and set(c) == {creeping},
        "every bar to show the creeping colour",
    )

    page.locator(".phviz-autopilot-stiffest button").click()
    said = wait_until(lambda: autopilot_said(page), "the autopilot's note")
    assert 0.5 < said < 10  # critical for the stiffest mode, not the 10 typed before
    wait_until(lambda: damping_shown(page) == said, "the sidebar to show the note's damping")
    # the stiffest mode is now near critical, so the stiffest bar is not orange any more
    wait_until(
        lambda: (c := bar_colours(page)) and c[-1] != ringing,
        "the stiffest bar to leave the oscillating colour",
    )
