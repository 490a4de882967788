"""Every press counts: several tabs on one server, each pressed as a person does (a
mouse click where its button is), Run then Pause round after round, then Step and
Reset; every tab must do what each press asked. Six tabs served by one process, and
four by two (``--num-procs 2``), as a class uses it.

Each page carries the benchmark's probe, which records every change of the status
line with the page's own clock, so every wait is on a condition read in the page:
t moving after Run, t standing still for a while after Pause (and still standing
once every tab has paused), one interval after Step, t = 0 after Reset. Between Run
and Pause each tab trains until it has shown several updates, so the Pause presses
land while updates stream in. A round's presses are all waited on before the test
fails, which names every tab whose press was not acted on and what it showed.
"""

from __future__ import annotations

import pytest
from browsing import DEADLINE, served

from phviz.bench.pages import (
    PAGE_PROBE,
    READY,
    RESET,
    RUNS,
    STANDS,
    STEPPED,
    STILL,
    TRAINED,
    acted,
    press,
    shown,
)

pytestmark = pytest.mark.browser

ROUNDS = 3
UPDATES = 8  # changes of t a tab shows after Run before Pause is pressed
QUIET_MS = 800  # t unchanged this long after the label turned Run: the run stands
INTERVAL = 0.1  # t of one switching interval (the default set-up)


class Tabs:
    """The test's tabs on one server, and the presses sent to them so far."""

    def __init__(self, browser, url: str, tabs: int):
        self.pages, self.errors, self.sent = [], [], 0
        for i in range(tabs):
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(4 * DEADLINE * 1000)
            page.on("pageerror", lambda e, i=i: self.errors.append(f"tab {i + 1}: {e}"))
            page.add_init_script(PAGE_PROBE)
            page.goto(f"{url}?horizon=1000000")
            page.wait_for_function(READY, polling=50)
            self.pages.append(page)

    def fail(self, missed: list[int], what: str, why: str) -> None:
        said = "; ".join(f"tab {i + 1}: {shown(self.pages[i])}" for i in missed)
        pytest.fail(f"{what} on {len(missed)} of {len(self.pages)} tabs {why}: {said}")

    def press(self, button: str, what: str, condition: str, arg=None) -> None:
        """Press ``button`` on each tab in turn, then wait until each shows
        ``condition``; fails naming every tab that did not."""
        for page in self.pages:
            press(page, button)
        self.sent += len(self.pages)
        missed = acted(self.pages, condition, arg, deadline_ms=DEADLINE * 1000)
        if missed:
            self.fail(missed, what, f"not acted on within {DEADLINE:g} s ({self.sent} sent)")

    def wait(self, what: str, condition: str, arg=None) -> None:
        missed = acted(self.pages, condition, arg, deadline_ms=DEADLINE * 1000)
        if missed:
            self.fail(missed, what, f"not within {DEADLINE:g} s")

    def close(self) -> None:
        for page in self.pages:
            page.close()


@pytest.mark.parametrize(
    ("procs", "count"), [pytest.param(1, 6, id="one process"), pytest.param(2, 4, id="two")]
)
def test_every_press_on_every_tab_is_acted_on(browser, tmp_path, procs, count):
    extra = ("--num-procs", "2") if procs == 2 else ()
    with served(tmp_path / "server.log", *extra) as url:
        tabs = Tabs(browser, url, count)
        for r in range(1, ROUNDS + 1):
            tabs.press(".phviz-run", f"round {r}: Run", RUNS)
            tabs.wait(f"round {r}: {UPDATES} updates while training", TRAINED, [UPDATES])
            tabs.press(".phviz-run", f"round {r}: Pause", STANDS, [QUIET_MS])
            # the first tabs have stood while the others were waited on
            missed = [i for i, page in enumerate(tabs.pages) if not page.evaluate(STILL)]
            if missed:
                tabs.fail(missed, f"round {r}: Pause", "ran again after it stood")
        tabs.press(".phviz-step", "Step", STEPPED, [INTERVAL])
        tabs.press(".phviz-reset", "Reset", RESET)
        tabs.close()
        assert not tabs.errors, tabs.errors
