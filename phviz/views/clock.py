"""Flow control between the server and one page: send only what the page has drawn.

A server that sends a fixed number of updates a second overruns a slow browser:
updates queue up, the page falls seconds behind, and a click (Pause) waits behind
them. ``FrameClock`` is an invisible component on the page. The server counts the
updates it sends in ``sent``; after the page has applied an update and painted the
next frame, it answers with ``drawn``. The server sends the next update only when
``drawn`` has caught up (or after ``patience`` seconds, should an answer be lost),
so however slow the browser, at most one update is in flight. It also reports
whether the page is visible, so a hidden tab's work can wait.
"""

from __future__ import annotations

import time

import param
from panel.custom import JSComponent


class FrameClock(JSComponent):
    """Counts updates sent and frames drawn; reports the page's visibility."""

    sent = param.Integer(default=0, doc="Updates the server has sent.")
    drawn = param.Integer(default=0, doc="The last update the page has painted.")
    visible = param.Boolean(default=True, doc="Whether the page is shown.")

    _esm = """
export function render({ model }) {
  // A task queued from the next animation frame runs once that frame, the one
  // showing the update, has been painted.
  const ack = () => requestAnimationFrame(() => setTimeout(() => {
    model.drawn = model.sent
  }, 0))
  model.on("sent", ack)
  const look = () => { model.visible = document.visibilityState === "visible" }
  document.addEventListener("visibilitychange", look)
  look()
  ack()
  return document.createElement("span")
}
"""

    def __init__(self, patience: float = 2.0, **params):
        super().__init__(width=0, height=0, margin=0, **params)
        self.patience = patience
        self._sent_at = 0.0

    def ready(self) -> bool:
        """Whether the page has drawn every update sent (or has kept us waiting
        longer than ``patience``)."""
        if self.drawn >= self.sent:
            return True
        return time.monotonic() - self._sent_at > self.patience

    def tick(self) -> None:
        """Count one more update sent (call within the update's ``pn.io.hold``)."""
        self._sent_at = time.monotonic()
        self.sent += 1
