"""Reading the explorer in headless Chromium: the presenter view's energy plot on a
1280 × 720 screen without scrolling, the status line's end never cut, the gap curve
under the landscape filled after a short run, an info icon's text on hover, and a
refused link's sidebar showing the settings that run. Every wait is on a condition,
with deadlines generous for a loaded 2-core machine."""

from __future__ import annotations

import pytest
from browsing import DEADLINE, served, shows, status_numbers, wait_until

from phviz.views import help

pytestmark = pytest.mark.browser

# The gap curve's source in the page has rows (read from BokehJS's documents).
GAP_ROWS = """() => {
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    const models = doc._all_models ? doc._all_models.values() : doc.all_models;
    for (const m of models) {
      const data = m.data;
      if (data && data.gap !== undefined && data.surface !== undefined) return data.t.length;
    }
  }
  return 0;
}"""
# An element's box and that of the component it is drawn in (its shadow root's host).
BOXES = """(el) => {
  const host = el.getRootNode().host;
  const a = el.getBoundingClientRect(), b = host.getBoundingClientRect();
  return {term: [a.left, a.top, a.right, a.bottom], box: [b.left, b.top, b.right, b.bottom]};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module."""
    with served(tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


def opened(page, url: str, query: str = "") -> None:
    page.goto(f"{url}?{query}" if query else url, timeout=4 * DEADLINE * 1000)
    page.locator(".phviz-status").first.wait_for(state="attached")


def test_the_presenter_view_shows_the_energy_plot_without_scrolling(page, server):
    page.set_viewport_size({"width": 1280, "height": 720})
    opened(page, server, "lesson=underdamped&present=1")
    energy = page.locator(".phviz-plot-energy").first
    energy.locator("canvas").first.wait_for()
    assert page.evaluate("window.scrollY") == 0
    box = wait_until(lambda: energy.bounding_box(), "the energy plot's box")
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= 1280 and box["y"] + box["height"] <= 720, box


@pytest.mark.parametrize("width", [1280, 1440])
def test_the_status_line_is_never_cut(page, server, width):
    page.set_viewport_size({"width": width, "height": 900})
    opened(page, server)
    run = page.locator(".phviz-run button").first
    run.click()  # numbers as wide as a run makes them: steps/s, nfe, the ledger
    wait_until(lambda: (s := status_numbers(page)) and s[0] > 1.0, "t to pass 1")
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Run", "Pause to become Run")
    last = page.locator(".phviz-term").last
    assert last.inner_text().strip() == "cpu"
    boxes = last.evaluate(BOXES)
    (left, top, right, bottom), (box_left, box_top, box_right, box_bottom) = boxes.values()
    assert box_left <= left and right <= box_right + 0.5, boxes
    assert box_top <= top and bottom <= box_bottom + 0.5, boxes
    steps = page.locator(".phviz-term").nth(-2)
    assert "steps/s" in steps.inner_text()
    assert steps.get_attribute("title") == help.STATUS["steps/s"]


def test_the_gap_curve_fills_after_a_short_run(page, server):
    opened(page, server)
    page.locator(".phviz-plot-profile canvas").first.wait_for()
    run = page.locator(".phviz-run button").first
    run.click()
    wait_until(lambda: (s := status_numbers(page)) and s[0] > 1.0, "t to pass 1")
    wait_until(lambda: page.evaluate(GAP_ROWS) > 3, "the gap curve's rows")
    run.click()
    wait_until(lambda: run.inner_text().strip() == "Run", "Pause to become Run")


def test_an_info_icon_says_how_to_read_its_plot(page, server):
    opened(page, server)
    icon = page.locator(".phviz-info-landscape").first
    icon.wait_for()
    words = help.PLOTS["landscape"][:40]
    assert not shows(page, words)
    icon.hover()
    wait_until(lambda: shows(page, words), "the landscape's help on hover")
    page.mouse.move(5, 5)
    wait_until(lambda: not shows(page, words), "the help to close")


def test_a_refused_link_runs_and_shows_the_default_model(page, server):
    opened(page, server, "hidden=4000,4000,4000")
    wait_until(lambda: shows(page, "could not be used"), "the banner to say why")
    assert shows(page, "the sidebar shows its settings")
    hidden = page.locator(".phviz-hidden input").first
    wait_until(lambda: hidden.input_value() == "16,16", "the sidebar's hidden widths")
    wait_until(lambda: status_numbers(page), "the default model's status line")
