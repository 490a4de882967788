"""Flow control between the server and one page: send only what the page has drawn,
and no more often than the page's share of the server allows.

A server that sends a fixed number of updates a second overruns a slow browser:
updates queue up, the page falls seconds behind, and a click (Pause) waits behind
them. ``FrameClock`` is an invisible component on the page. The server counts the
updates it sends in ``sent`` and tells the page; after the page has applied an
update and painted the next frame, it answers with the count it has ``drawn``. The
server sends the next update only when ``drawn`` has caught up, so however slow
the browser, one update is in flight. An update that took the page longer than
``quick`` seconds from sending to drawn buys it a rest of ``rest`` times the time
beyond that (at most ``patience``) before the next is sent: a page that draws
quickly notices nothing, while one on a slow or busy machine is kept from drawing
without pause, so a click finds it idle most of the time and is answered sooner,
and the machine keeps cores for the rest. Where many pages share one machine each
one's drawing stretches with the others'; resting longer than it drew keeps fewer of
them drawing at once, so each draws faster, and the pages together draw about as
many updates as before.
Should an answer be lost, it goes on after ``patience`` seconds, and waits twice as
long for each further update in flight.
It also reports whether the page is visible, so a hidden tab's work can wait, and
when the page has drawn itself, before which nothing is sent (changes made while a
page is still connecting can be lost on the way).

The same message carries the status line's text, which the component shows: set as
plain HTML inside a box of fixed height, it changes nothing else on the page, where
a Bokeh or Panel text model would make the browser lay out every plot again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import panel as pn
import param
from panel.custom import JSComponent

# The periodic callback's shortest period: at most 12.5 updates a second, fewer when
# the page has not drawn the last one yet (FrameClock), longer among many tabs.
TICK_SECONDS = 0.08
# Updates a second that one server process sends, all running tabs together, once
# there are more tabs than that allows at the full rate: every update costs the
# server's one thread (and a browser on the same machine) milliseconds that training
# could use, and a tab among many needs its curves no smoother than a few times a
# second.
SERVER_UPDATES_PER_SECOND = 25.0


def refresh_ms(args: dict | None = None) -> int:
    """The update period in ms: ``TICK_SECONDS``, or the page's ``?refresh=`` (40 to
    2000), for whoever wants fewer updates than the page could draw."""
    default = round(1000 * TICK_SECONDS)
    args = (pn.state.session_args or {}) if args is None else args
    try:
        value = int(args.get("refresh", [b""])[0].decode() or default)
    except (ValueError, UnicodeDecodeError, AttributeError, IndexError):
        return default
    return min(2000, max(40, value))


def share_allows(sent_at: float, running: int) -> bool:
    """Whether a tab that last sent an update at ``sent_at`` (``time.monotonic()``) may
    send one now: at the full rate among a few running tabs, sharing
    ``SERVER_UPDATES_PER_SECOND`` among many."""
    return time.monotonic() - sent_at >= running / SERVER_UPDATES_PER_SECOND


def tick_period(current: int, running: int, floor: int) -> int:
    """The periodic callback's next period in ms: about two ticks per update that a
    tab's share of ``SERVER_UPDATES_PER_SECOND`` allows among ``running`` tabs, never
    below ``floor``; ``current`` stays unless the change is over a quarter (setting a
    period restarts the callback). Twenty tabs ticking 12.5 times a second kept the
    server's thread busy with ticks that found nothing due, and a click waited behind
    them: each step of reading it waits for the callbacks due before it."""
    period = max(floor, round(500 * running / SERVER_UPDATES_PER_SECOND))
    return period if abs(period - current) > 0.25 * current else current


class FrameClock(JSComponent):
    """Counts updates sent and frames drawn, reports the page's visibility, and shows
    the status line (``text`` until the first update brings another)."""

    text = param.String(default="", doc="HTML shown until an update brings new text.")

    visible = param.Boolean(default=True, doc="Whether the page is shown.")
    rendered = param.Boolean(default=False, doc="Whether the page has drawn itself.")

    # These are not user actions, so they do not count towards Panel's "busy" state
    # (whose bookkeeping costs the server thread about a millisecond an event).
    _busy__ignore = ["visible", "rendered"]

    _esm = """
export function render({ model }) {
  // A task queued from the next animation frame runs once that frame, the one
  // showing the update, has been painted.
  // The answer is a message, not a parameter: one comes back for every update, and
  // a parameter's change costs the server several times more.
  let sent = 0
  const ack = () => requestAnimationFrame(() => setTimeout(() => {
    model.send_msg({drawn: sent})
  }, 0))
  // The count comes as a message, sent right after the update it counts; a
  // parameter change would cost the server several times more per update.
  const line = document.createElement("div")
  line.innerHTML = model.text
  model.on("msg:custom", (msg) => {
    if (msg.html !== null) line.innerHTML = msg.html
    sent = msg.sent
    ack()
  })
  const look = () => { model.visible = document.visibilityState === "visible" }
  document.addEventListener("visibilitychange", look)
  look()
  // Changes made while the page was still connecting can be lost on the way; the
  // server sends nothing until this says the page is there.
  model.rendered = true
  return line
}
"""

    def __init__(
        self,
        patience: float = 2.0,
        on_drawn: Callable[[], None] | None = None,
        quick: float = 0.1,
        rest: float = 4.0,
        now: Callable[[], float] = time.monotonic,
        **params,
    ):
        params.setdefault("height", 0)  # give it a height to show the status line
        params.setdefault("margin", 0)
        super().__init__(**params)
        self.patience = patience
        self.quick = quick
        self.rest = rest
        self.now = now  # the clock every wait is measured on
        self.on_drawn = on_drawn  # called on the server's thread when the page answers
        self.sent = 0  # updates the server has sent
        self.drawn = 0  # the last update the page has painted
        self._sent_at = 0.0
        self._drawn_at = 0.0  # when the page answered for the latest update
        self.drawing = 0.0  # seconds from sending the latest update to its answer

    def _handle_msg(self, data) -> None:
        if isinstance(data, dict) and isinstance(data.get("drawn"), int):
            self.answer(data["drawn"])

    def answer(self, drawn: int) -> None:
        """The page says it has painted update number ``drawn``."""
        if drawn >= self.sent > self.drawn:
            self._drawn_at = self.now()
            self.drawing = self._drawn_at - self._sent_at
        self.drawn = drawn
        if self.on_drawn is not None:
            self.on_drawn()

    def ready(self) -> bool:
        """Whether the page has drawn every update sent and rested after the last, or
        has kept us waiting too long: ``patience`` for one update in flight, twice as
        long for each further one. An answer can be lost (a hidden tab paints no
        frames), but a page slower than ``patience`` must not collect a queue that a
        click would wait behind."""
        behind = self.sent - self.drawn
        if behind <= 0:
            # at most ``patience``: an answer held back (a tab hidden for minutes) is no
            # measure of how long the page takes to draw
            rest = min(self.patience, self.rest * (self.drawing - self.quick))
            return self.now() - self._drawn_at >= rest
        return self.now() - self._sent_at > self.patience * 2 ** (behind - 1)

    def tick(self, html: str | None = None) -> None:
        """Count one more update sent, with the status line's new ``html`` (None: as it
        was). Call once the update has gone out, after its ``pn.io.hold``: the page
        acknowledges what arrived before the count."""
        self._sent_at = self.now()
        self.sent += 1
        self._send_msg({"sent": self.sent, "html": html})
