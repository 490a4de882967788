"""Server hygiene for ``panel serve``: a closed browser tab is not an error.

When a tab closes while a periodic callback is sending, Tornado's write fails with
``WebSocketClosedError`` and asyncio logs the unretrieved task with a traceback.
Nothing is wrong (the session is being destroyed), but a traceback in the server
log reads as a failure; this filter drops exactly those records and no others.
"""

from __future__ import annotations

import logging

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
