"""What the browser tests share besides their fixtures (``conftest.py``): serving the
explorer, and reading and waiting on the page.

``served`` runs ``panel serve apps/explorer.py`` as the README does (the benchmark's
own launcher, in this checkout) on a free port; at the end it sends SIGTERM to the
server, as a service manager does, fails unless the server and every process it
started have stopped within ``STOP_SECONDS``, and finds no traceback in its log.
Every wait is on a condition (``wait_until``), with a deadline generous for a loaded
2-core machine.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phviz.bench.pages import free_port
from phviz.bench.pages import serve as launch_server
from phviz.bench.pages import stop as stop_server

DEADLINE = 40.0  # seconds any one condition may take on a loaded 2-core machine
STOP_SECONDS = 10.0  # from SIGTERM until the server and its children have all gone
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:http://127.0.0.1", "about:")


def wait_until(condition, what: str, timeout: float = DEADLINE, poll: float = 0.1):
    """``condition()``'s first truthy value, polled until ``timeout``; fails saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


def shows(page, text: str) -> bool:
    """Whether ``text`` is on the page and visible (the banner renders in a shadow
    root, which text locators pierce)."""
    found = page.get_by_text(text)
    return found.count() > 0 and found.first.is_visible()


def status_numbers(page) -> tuple[float, float] | None:
    """(t, train loss) from the status line, or None while it is not drawn yet. Its
    text is read whether it is shown or in a tab not shown."""
    status = page.locator(".phviz-status")
    if not status.count():
        return None
    text = status.first.text_content()
    t = re.search(r"\bt\s+([-\d.e+]+)", text)
    loss = re.search(r"train loss\s+([-\d.e+]+)", text)
    if not (t and loss):
        return None
    return float(t.group(1)), float(loss.group(1))


@contextlib.contextmanager
def served(log_path: Path, *extra: str) -> Iterator[str]:
    """The explorer's URL, served with ``extra`` arguments to ``panel serve`` and
    logging to ``log_path``. Afterwards the server must still be running, must stop
    with every process it started within ``STOP_SECONDS`` of SIGTERM, and its log
    must hold no traceback."""
    port = free_port()
    with open(log_path, "w") as log:
        try:
            server = launch_server(port, log, *extra)
        except RuntimeError as err:
            raise RuntimeError(f"{err}:\n{log_path.read_text()}") from None
        try:
            yield f"http://127.0.0.1:{port}/explorer"
        finally:
            died = server.poll()
            # (what is left after a generous wait is killed; the test fails below)
            took, left = stop_server(server, timeout=STOP_SECONDS)
    text = log_path.read_text()
    assert died is None, f"the server exited ({died}) before the test ended:\n{text}"
    assert not left, f"still running {took:.1f} s after SIGTERM: {left}"
    assert "Traceback" not in text, text


def open_explorer(page, url: str) -> None:
    """Go to the explorer (a cold server's first page takes longest)."""
    page.goto(url, timeout=4 * DEADLINE * 1000)
