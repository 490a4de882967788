"""Your own data and per-layer gains in headless Chromium: an uploaded CSV reaches the
training set, a bad file is named in the banner, and a layer's damping edit shows.
Every wait is on a condition. (Points drawn in the page are not driven here yet: a
click soon after the server has replaced the drawn points can be lost.)"""

from __future__ import annotations

import re
import subprocess

import pytest
from test_explorer_browser import (
    DEADLINE,
    free_port,
    launch,
    serve,
    shows,
    status_numbers,
    wait_until,
)

pytestmark = pytest.mark.browser


def training_points(page) -> tuple[int, str] | None:
    """(N, where) from the "Training on N points (where)" line, else None."""
    line = page.locator(".phviz-training-points")
    if not line.count():
        return None
    found = re.search(r"Training on (\d+) points \((.*)\)", line.first.text_content())
    return (int(found.group(1)), found.group(2)) if found else None


def test_uploaded_points_reach_the_training_set(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    log_path = tmp_path / "server.log"
    server = serve(port, log_path)
    console: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(sync_api, p)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(DEADLINE * 1000)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/explorer", timeout=4 * DEADLINE * 1000)
            try:
                drive(page, tmp_path)
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                raise
            page.close()
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert not console, console


def drive(page, tmp_path) -> None:
    wait_until(lambda: status_numbers(page), "the status line")
    first = wait_until(lambda: training_points(page), "the count of training points")
    assert "moons" in first[1]

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
