"""A closed tab gives everything back: the explorer served in this process, pages opened
and closed in headless Chromium, and weak references to what each session held.

The server runs in a thread of the test's own process and builds each page as
``apps/explorer.py`` does, keeping only a weak reference to each explorer, so what a
session held can be looked at after its page has gone; it notices a closed page
within a fraction of a second (not Bokeh's default 17 s).
"""

from __future__ import annotations

import gc
import weakref

import pytest
from browsing import DEADLINE, LOCAL, open_explorer, status_numbers, wait_until
from waiting import wait_for

from phviz.bench.pages import free_port
from phviz.views import Explorer
from phviz.views.layout import page as explorer_page
from phviz.views.linkview import read_link

pytestmark = pytest.mark.browser


def held(explorer: Explorer) -> dict[str, weakref.ref]:
    """Weak references to what one session holds: the explorer, its session, its
    figures, and the trainer and the pictures' snapshot its slices made (a session
    that no page joined may have closed already: it has none to give)."""
    session = explorer.session
    refs = {
        "explorer": weakref.ref(explorer),
        "session": weakref.ref(session),
        "plots": weakref.ref(explorer.plots),
        "landscape figure": weakref.ref(explorer.plots.landscape_fig),
    }
    if session.shown is not None:
        refs["pictures"] = weakref.ref(session.shown)
    try:
        refs["trainer"] = session.ask(weakref.ref, timeout=5.0)
    except TimeoutError:  # closed: no slice of it runs any more
        pass
    return refs


def test_closed_tabs_leave_nothing_of_their_sessions_behind(browser):
    import panel as pn

    made: list[weakref.ref] = []

    def app():
        explorer = Explorer(link=read_link())
        made.append(weakref.ref(explorer))
        return explorer_page([explorer], explorer.sidebar())

    port = free_port()
    server = pn.serve(
        {"explorer": app},
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
        refs, seen = [], 0
        for tab in range(2):
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            open_explorer(page, f"{LOCAL[0]}:{port}/explorer?run=1")
            wait_until(lambda p=page: (s := status_numbers(p)) and s[0] > 0.2, "t to advance")
            if tab == 0:  # the gain map's tab too: a HoloViews pane with its streams
                page.get_by_text("Gain map").first.click()
                page.locator(".phviz-gainmap").first.wait_for()
            # this page's session (a request may also make one that no page joins)
            explorers = [ref() for ref in made[seen:]]
            seen = len(made)
            refs += [held(e) for e in explorers if e is not None]
            explorers = None
            page.close()
        assert sum("trainer" in r and "pictures" in r for r in refs) >= 2

        def kept() -> list[str]:
            gc.collect()
            return [f"{i}: {name}" for i, r in enumerate(refs) for name, ref in r.items() if ref()]

        def closed(i: int) -> str:
            """Whether a session still held was closed (its tab's end was seen)."""
            session = refs[i]["session"]()
            return "gone" if session is None else f"closed={session._closed}"

        # (their jobs too: the pool would hold the sessions)
        wait_for(lambda: not kept(), timeout=DEADLINE)
        left = kept()
        sessions = {i: closed(i) for i in sorted({int(k.split(":")[0]) for k in left})}
        assert not left, f"still held {DEADLINE:g} s after the tabs closed: {left} {sessions}"
    finally:
        server.stop()
