"""Every press counts: several tabs on one server, each pressed as a person does (a
mouse click where its button is), Run then Pause, then Step and Reset; every tab must
do what each press asked, served by one process and by two (``--num-procs 2``).

Each page carries the benchmark's probe, which records every change of the status
line with the page's own clock, so every wait is on a condition read in the page:
t moving after Run, t standing still for a while after Pause, one interval after
Step, t = 0 after Reset.
"""

from __future__ import annotations

import pytest
from browsing import DEADLINE, served

from phviz.bench.pages import PAGE_PROBE, READY

pytestmark = pytest.mark.browser

TABS = 4
ROUNDS = 2
QUIET_MS = 800  # t unchanged this long after the label turned Run: the run stands
INTERVAL = 0.1  # t of one switching interval (the default set-up)

# Where a button is, and what the page showed when it was pressed.
MARK = """(name) => {
  const p = window.__phvizProbe
  const host = p.find(name)
  const button = host.querySelector('button') || host.shadowRoot.querySelector('button')
  p.pressedT = p.t
  p.pressedAt = performance.now()
  const box = button.getBoundingClientRect()
  return [box.x + box.width / 2, box.y + box.height / 2]
}"""

LABEL = "(p => { const run = p.runButton(); return run ? run.textContent.trim() : null })"

RUNS = f"""() => {{
  const p = window.__phvizProbe
  return {LABEL}(p) === 'Pause' && p.t > p.pressedT
}}"""

STANDS = f"""([quiet]) => {{
  const p = window.__phvizProbe
  if ({LABEL}(p) !== 'Run') return false
  const last = Math.max(p.tChanged ?? 0, p.pressedAt)
  return performance.now() - last >= quiet
}}"""

STEPPED = f"""([interval]) => {{
  const p = window.__phvizProbe
  return {LABEL}(p) === 'Run' && Math.abs(p.t - (p.pressedT + interval)) < 0.006
}}"""

RESET = f"""() => {{
  const p = window.__phvizProbe
  return {LABEL}(p) === 'Run' && p.t === 0
}}"""


def press(page, button: str) -> None:
    """A mouse click at the centre of the button in the element named ``button``."""
    x, y = page.evaluate(MARK, button)
    page.mouse.click(x, y)


def acted(page, condition: str, arg=None) -> None:
    page.wait_for_function(condition, arg=arg, polling=50, timeout=DEADLINE * 1000)


def every_tab(pages, button: str, condition: str, arg=None) -> None:
    """Press ``button`` on each tab in turn, then wait until each shows ``condition``."""
    for page in pages:
        press(page, button)
    for page in pages:
        acted(page, condition, arg)


@pytest.mark.parametrize("procs", [1, 2])
def test_every_press_on_every_tab_is_acted_on(browser, tmp_path, procs):
    extra = ("--num-procs", "2") if procs == 2 else ()
    with served(tmp_path / "server.log", *extra) as url:
        pages = []
        for _ in range(TABS):
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(4 * DEADLINE * 1000)
            page.add_init_script(PAGE_PROBE)
            page.goto(f"{url}?horizon=1000000")
            page.wait_for_function(READY, polling=50)
            pages.append(page)
        for _ in range(ROUNDS):
            every_tab(pages, ".phviz-run", RUNS)
            every_tab(pages, ".phviz-run", STANDS, [QUIET_MS])
        every_tab(pages, ".phviz-step", STEPPED, [INTERVAL])
        every_tab(pages, ".phviz-reset", RESET)
        for page in pages:
            page.close()
