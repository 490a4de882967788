"""Serving the explorer: how many sessions a process takes, and server hygiene.

``SessionGate`` keeps an optional limit on concurrent sessions, with a plain
"this server is full" page for newcomers over it.

A server stops within seconds of SIGTERM, as a service manager expects.
``panel serve --num-procs N`` forks N children from a parent that dies at SIGTERM
without telling them (tornado's fork loop has no handler), so each child that runs a
session follows its parent (``follow_parent``): once the parent is gone it sends
SIGTERM to itself and to its sibling children, which Bokeh's own handler turns into
a clean stop. A process at exit then skips the interpreter's last collections of a
heap of sessions, which took seconds (``exit_promptly``).

A closed browser tab is not an error. When a tab closes while a periodic callback
is sending, Tornado's write fails with ``WebSocketClosedError`` and asyncio logs
the unretrieved task with a traceback. Nothing is wrong (the session is being
destroyed), but a traceback in the server log reads as a failure; this filter
drops exactly those records and no others.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

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


def release_callbacks(*roots) -> None:
    """Let go of the JavaScript callbacks Panel keeps for the widgets under ``roots``
    (a page's layouts and widgets), once the page has closed.

    Panel keeps such callbacks (its composite widgets make them for themselves) in a
    class-wide registry keyed weakly by the widget, but each callback holds the widget
    through its arguments: the entry, and with it the closed page's whole session,
    would never be freed."""
    from panel.links import Callback

    for root in roots:
        for obj in root.select():
            for callback in list(Callback.registry.get(obj, ())):
                callback.unwatch()


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


_once: set[str] = set()
_once_lock = threading.Lock()


def _first_time(name: str) -> bool:
    with _once_lock:
        if name in _once:
            return False
        _once.add(name)
        return True


def exit_promptly() -> None:
    """At exit, skip the interpreter's last garbage collections (once per process).

    They walk every object the server's sessions left, which took seconds; the
    process ends right after, and its memory goes back to the system all the same.
    Exit handlers (the worker pool's among them) still run first."""
    if _first_time("exit"):
        atexit.register(gc.freeze)


def follow_parent(poll: float = 0.5) -> None:
    """In a child of ``panel serve --num-procs``, stop when the parent has gone: SIGTERM
    to this process and to its sibling children (once per process; nothing in a server
    of one process)."""
    from tornado.process import task_id

    if task_id() is None or not _first_time("parent"):
        return
    parent = os.getppid()
    siblings = {pid: started for pid, started in _children(parent).items() if pid != os.getpid()}

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        for pid, started in siblings.items():
            if _start_time(pid) == started:  # still that sibling, not a new process
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="phviz-parent", daemon=True).start()


def _children(parent: int) -> dict[int, str | None]:
    """The processes whose parent is ``parent``, each with its start time (Linux's
    /proc; none elsewhere)."""
    pids = []
    listed = Path(f"/proc/{parent}/task/{parent}/children")
    try:
        pids = [int(pid) for pid in listed.read_text().split()]
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(parent)]:
                    pids.append(int(entry.name))
    return {pid: _start_time(pid) for pid in pids}


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command's name (state, parent, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None  # field 22 of stat: start time
