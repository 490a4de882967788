"""A closed tab gives everything back: the explorer served in this process, pages opened
and closed in headless Chromium, and weak references to what each session held.

The server runs ``apps/explorer.py`` in a thread of the test's own process, so the
objects of its sessions can be looked at after the pages have gone; it notices a
closed page within a fraction of a second (not Bokeh's default 17 s).
"""

from __future__ import annotations

import gc
import weakref

import pytest
from browsing import LOCAL, open_explorer, status_numbers, wait_until

from phviz.bench.pages import ROOT, free_port
from phviz.views import Explorer
from phviz.views.layout import Plots

pytestmark = pytest.mark.browser


def held(explorer: Explorer) -> dict[str, weakref.ref]:
    """Weak references to what one session holds: the explorer, its session, the
    trainer and the pictures' snapshot its slices made, and its figures."""
    session = explorer.session
    trainer = session.ask(weakref.ref)
    return {
        "explorer": weakref.ref(explorer),
        "session": weakref.ref(session),
        "trainer": trainer,
        "pictures": weakref.ref(session.shown),
        "plots": weakref.ref(explorer.plots),
        "landscape figure": weakref.ref(explorer.plots.landscape_fig),
    }


def live(kind) -> list:
    gc.collect()
    return [obj for obj in gc.get_objects() if type(obj) is kind]


def test_closed_tabs_leave_nothing_of_their_sessions_behind(browser):
    import panel as pn

    port = free_port()
    spare_before = len(live(Plots))
    server = pn.serve(
        {"explorer": str(ROOT / "apps" / "explorer.py")},
        port=port,
        address="127.0.0.1",
        websocket_origin=f"127.0.0.1:{port}",
        threaded=True,
        show=False,
        check_unused_sessions_milliseconds=200,
        unused_session_lifetime_milliseconds=200,
    )
    try:
        wait_until(lambda: server.is_alive(), "the server thread")
        refs = []
        for tab in range(2):
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            open_explorer(page, f"{LOCAL[0]}:{port}/explorer?run=1")
            wait_until(lambda p=page: (s := status_numbers(p)) and s[0] > 0.2, "t to advance")
            if tab == 0:  # the gain map's tab too: a HoloViews pane with its streams
                page.get_by_text("Gain map").first.click()
                page.locator(".phviz-gainmap").first.wait_for()
            built = [e for e in live(Explorer) if hasattr(e, "session")]  # not half-made
            explorers = [e for e in built if e.session.ready]
            built = None
            refs += [held(e) for e in explorers if all(e is not r["explorer"]() for r in refs)]
            explorers = None
            page.close()
        assert len(refs) >= 2  # (a page's request may make a session it never joins)

        def freed() -> bool:
            gc.collect()
            return not any(ref() is not None for r in refs for ref in r.values())

        wait_until(freed, "the closed tabs' sessions to be freed")
        # (their jobs too: the pool would hold the sessions.) One page's figures at
        # most are built ahead for the next page.
        assert len(live(Plots)) <= spare_before + 1
    finally:
        server.stop()
