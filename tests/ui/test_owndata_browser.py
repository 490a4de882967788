"""Your own data and per-layer gains in headless Chromium: points drawn on the data plot
(on an empty set, and on the run's points after "Start from the current data") and an
uploaded CSV reach the training set, a bad file is named in the banner, and a layer's
damping edit shows. Every wait is on a condition."""

from __future__ import annotations

import re

import pytest
from browsing import open_explorer, shows, status_numbers, wait_until

pytestmark = pytest.mark.browser


def training_points(page) -> tuple[int, str] | None:
    """(N, where) from the "Training on N points (where)" line, else None."""
    line = page.locator(".phviz-training-points")
    if not line.count():
        return None
    found = re.search(r"Training on (\d+) points \((.*)\)", line.first.text_content())
    return (int(found.group(1)), found.group(2)) if found else None


def drawn_count(page) -> int | None:
    """The count of drawn points the page holds (written in the page from its own copy)."""
    text = page.locator(".phviz-drawn-count").first.text_content()
    found = re.search(r"(\d+) points drawn", text)
    return int(found.group(1)) if found else None


TOOL_CLASS = """(label) => Bokeh.documents.flatMap((d) => [...d.all_models])
  .some((m) => m.type === "PointDrawTool" && m.empty_value === label)"""


def draw(page, task, label: int, at: tuple[float, float]) -> None:
    """Pick ``label`` and click at ``at`` (fractions of the data plot's box); waits until
    the page holds the new point. One click at a time: two within Bokeh's double-tap
    interval may be taken as one gesture, depending on the timing."""
    n = drawn_count(page)
    page.locator(".phviz-draw-class button", has_text=str(label)).click()
    # The server has the class once the page's draw tool takes it from there; a click
    # sooner would outrun it (the server reads a widget's change a tick after the edit).
    page.wait_for_function(TOOL_CLASS, arg=label)
    box = task.bounding_box()
    page.mouse.click(box["x"] + at[0] * box["width"], box["y"] + at[1] * box["height"])
    wait_until(lambda: drawn_count(page) == n + 1, f"the point drawn at {at}")


def test_drawn_and_uploaded_points_reach_the_training_set(explorer, page, tmp_path):
    open_explorer(page, explorer)
    drive(page, tmp_path)


def drive(page, tmp_path) -> None:
    wait_until(lambda: status_numbers(page), "the status line")
    first = wait_until(lambda: training_points(page), "the count of training points")
    assert "moons" in first[1]
    page.locator(".phviz-own-data .card-header").first.click()  # built on first expand

    # Four points on an empty set, two of each class, away from the frame's edges.
    task = page.locator(".phviz-pictures > div").nth(1)
    wait_until(lambda: task.locator(".bk-tool-icon-point-draw").count(), "the draw tool")
    assert drawn_count(page) == 0
    draw(page, task, 0, (0.2, 0.85))
    draw(page, task, 0, (0.3, 0.85))
    draw(page, task, 1, (0.8, 0.17))
    draw(page, task, 1, (0.7, 0.17))
    page.locator(".phviz-use-drawn button").click()
    wait_until(lambda: training_points(page) == (4, "your drawn points"), "the run on 4 points")

    # Back to the data set: its run, and no drawn points left.
    page.locator(".phviz-back-to-data button").click()
    wait_until(lambda: training_points(page) == first, "the data set's run again")
    wait_until(lambda: drawn_count(page) == 0, "the drawn points to be cleared")

    # The run's points to start from (once the page holds them), and one more.
    page.locator(".phviz-from-current button").click()
    wait_until(lambda: drawn_count(page) == first[0], "the run's points in the page")
    draw(page, task, 1, (0.2, 0.17))  # the top left corner: no point of the data set there
    page.locator(".phviz-use-drawn button").click()
    wait_until(
        lambda: training_points(page) == (first[0] + 1, "your drawn points"),
        "the run to train on the drawn points",
    )
    page.screenshot(path=str(tmp_path / "drawn.png"))

    # Upload: 40 points, of which the data set's train fraction (0.75) trains.
    rows = "\n".join(f"{i % 7 - 3},{i % 5 - 2},{i % 2}" for i in range(40))
    good = tmp_path / "points.csv"
    good.write_text("x1,x2,label\n" + rows + "\n")
    upload = page.locator(".phviz-upload input[type=file]")
    upload.set_input_files(str(good))
    wait_until(lambda: training_points(page) == (30, "points.csv"), "the file's run")

    # A bad file is named in the banner; the file's run stays.
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,label\n1,2,0\n1,x,1\n")
    upload.set_input_files(str(bad))
    wait_until(
        lambda: shows(page, "bad.csv: Invalid CSV: row 2, column 2 is not a number"),
        "the bad file's message",
    )
    assert training_points(page) == (30, "points.csv")

    # A layer's damping: shown in the table's note; a negative one is refused by name.
    page.locator(".phviz-layer-section .card-header").first.click()
    cell = page.locator(".phviz-layer-damping-2 input").first
    cell.fill("0.25")
    cell.press("Enter")
    note = page.locator(".phviz-layer-note").first
    wait_until(lambda: "damping by layer (2: 0.25" in note.text_content(), "the layer's damping")
    cell.fill("-1")
    cell.press("Enter")
    wait_until(lambda: shows(page, "Invalid damping for layer '2'"), "the refusal")
    wait_until(lambda: cell.input_value() == "0.25", "the old value back in the cell")
    page.screenshot(path=str(tmp_path / "owndata.png"), full_page=True)
