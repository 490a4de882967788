"""Serving the explorer: how many sessions a process takes, and server hygiene.

``SessionGate`` keeps an optional limit on concurrent sessions, with a plain
"this server is full" page for newcomers over it.

A closed browser tab is not an error. When a tab closes while a periodic callback
is sending, Tornado's write fails with ``WebSocketClosedError`` and asyncio logs
the unretrieved task with a traceback. Nothing is wrong (the session is being
destroyed), but a traceback in the server log reads as a failure; this filter
drops exactly those records and no others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

_CLOSED = ("WebSocketClosedError", "StreamClosedError")


class ClosedConnectionFilter(logging.Filter):
    """Drops log records whose exception is a write to an already closed socket."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:  # asyncio passes the exception in the message's context
            return True
        return type(exc).__name__ not in _CLOSED


def quiet_closed_connections() -> None:
    """Install the filter on the loggers that report closed tabs (once)."""
    for name in ("asyncio", "tornado.application"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClosedConnectionFilter) for f in logger.filters):
            logger.addFilter(ClosedConnectionFilter())


class SessionGate:
    """At most ``limit`` live sessions in this process (None: no limit).

    ``admit()`` takes a place for the session being built and frees it when that
    session is destroyed (the tab closed); a newcomer over the limit is told so.
    """

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def admit(self, on_destroyed) -> bool:
        """Take a place, or return False when the server is full. ``on_destroyed``
        registers a callback for the session's end (``pn.state.on_session_destroyed``)."""
        with self._lock:
            if self.limit is not None and self.count >= self.limit:
                return False
            self.count += 1
        on_destroyed(lambda _context: self.release())
        return True

    def release(self) -> None:
        with self._lock:
            self.count = max(0, self.count - 1)


_gates: dict[int | None, SessionGate] = {}


def session_gate(limit: int | None) -> SessionGate:
    """The process's gate for ``limit`` (the app's module runs anew per session)."""
    return _gates.setdefault(limit, SessionGate(limit))


def full_page(limit: int):
    """What a newcomer sees when the server already holds ``limit`` sessions."""
    import panel as pn

    return pn.Column(
        pn.pane.Alert(
            f"<b>This server is full.</b> It serves at most {limit} explorer sessions at "
            "once, and all of them are in use. Try again in a few minutes, or ask whoever "
            "runs it to start more servers.",
            alert_type="warning",
            css_classes=["phviz-full"],
            styles={"font-size": "20px"},
        ),
        sizing_mode="stretch_width",
    )


def waker(callback: Callable[[], None]) -> Callable[[], None] | None:
    """A function any thread may call to have ``callback`` run soon on the current
    page's server thread (None outside a served page)."""
    import panel as pn

    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None

    def wake() -> None:
        with contextlib.suppress(Exception):  # the tab has closed meanwhile
            doc.add_next_tick_callback(callback)

    return wake


def servable(template) -> None:
    """Add ``template`` to the session's document with the document's model graph
    frozen: every widget link and root added otherwise recomputes the set of all
    models in the document (a few hundred), which took most of a page's build."""
    import panel as pn

    doc = pn.state.curdoc
    if doc is None:
        template.servable()
        return
    with doc.models.freeze():
        template.servable()
