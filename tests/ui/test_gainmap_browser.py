"""The gain map tab in headless Chromium: compute a small map, click a cell, and the
sidebar takes its gains while the run restarts. Every wait is on a condition."""

from __future__ import annotations

import re

import pytest
from browsing import DEADLINE, open_explorer, status_numbers, wait_until

pytestmark = pytest.mark.browser


def gains_used(page) -> tuple[float, float] | None:
    """(B, M) from the map's "Using the cell's gains (B = …, M = …)" line, else None."""
    line = page.get_by_text("Using the cell's gains")
    if not line.count():
        return None
    text = line.first.inner_text()
    found = re.search(r"Using the cell's gains \(B = ([\d.e+-]+), M = ([\d.e+-]+)\)", text)
    return (float(found.group(1)), float(found.group(2))) if found else None


def test_a_clicked_cell_sets_its_gains_and_restarts_the_run(explorer, page, tmp_path):
    open_explorer(page, explorer)
    drive(page, tmp_path)


def drive(page, tmp_path) -> None:
    wait_until(lambda: status_numbers(page), "the status line")
    damping = page.locator(".phviz-damping input").first
    inertia = page.locator(".phviz-inertia input").first
    before = float(damping.input_value()), float(inertia.input_value())
    # 5 intervals a second (t grows by 0.5 a second): a restart to t = 0 is plain to see.
    page.locator(".phviz-speed select").select_option(label="5 /s")
    run = page.locator(".phviz-run button")
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Pause", "Run to become Pause")
    wait_until(lambda: (s := status_numbers(page)) and s[0] >= 4.0, "t to reach 4", poll=0.3)

    page.get_by_text("Gain map", exact=True).first.click()
    view = page.locator(".phviz-gainmap").first
    view.locator(".phviz-map-size select").select_option(label="3 × 3")
    view.locator(".phviz-map-horizon select").select_option(label="T = 2")
    view.get_by_role("button", name="Compute").click()
    wait_until(
        lambda: view.get_by_text(re.compile(r"9 runs to T = 2 in")).count(),
        "the map to be computed",
        timeout=4 * DEADLINE,
        poll=0.3,
    )
    t_before = status_numbers(page)[0]  # the status line is kept current in its tab
    assert t_before >= 4.0

    # A click in the upper left of the plot: away from the middle cell (today's gains).
    canvas = view.locator("canvas").first
    canvas.wait_for()
    page.screenshot(path=str(tmp_path / "map.png"))  # what was clicked, for a failure
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    used = wait_until(lambda: gains_used(page), "the map to take the clicked cell's gains")
    assert used != before
    assert used[0] in (round(before[0] / 10, 3), before[0], before[0] * 10)
    assert used[1] in (round(before[1] / 10, 3), before[1], before[1] * 10)

    page.get_by_text("Live", exact=True).first.click()
    wait_until(
        lambda: (float(damping.input_value()), float(inertia.input_value())) == used,
        "the sidebar's damping and inertia to show the cell's gains",
    )
    wait_until(lambda: run.inner_text().strip() == "Pause", "the run to play again")
    wait_until(
        lambda: (s := status_numbers(page)) and s[0] < min(2.0, t_before - 2.0),
        "t to go back near 0",
        poll=0.05,
    )
