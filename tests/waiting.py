"""Waiting on a condition in tests without a browser (never on a fixed sleep)."""

import time


def wait_for(condition, timeout: float = 60.0):
    """``condition()``'s first truthy value, polled until ``timeout`` s (else its last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
