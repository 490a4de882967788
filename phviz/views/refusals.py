"""A refused edit says so in its tab's banner: never a silent no-op, never a traceback.

A value the settings refuse (a negative damping typed into its box, say) raises in
Panel's callback for the edit. ``tell_refused_edits`` makes every such error of a
served process go to the banner of the tab it came from, in plain words, and puts
that tab's sidebar back to the settings that run; an error that is not a refused
value is logged with its traceback on the server as well. No physics here.
"""

from __future__ import annotations

import logging
import weakref

import panel as pn

from .slices import Notice

log = logging.getLogger("phviz")

# A session's document → its explorer (weakly: a closed tab's explorer is not kept).
_EXPLORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def follow_refusals(explorer) -> None:
    """Errors in the callbacks of the session being built go to ``explorer``'s banner."""
    doc = pn.state.curdoc
    if doc is not None:
        _EXPLORERS[doc] = weakref.ref(explorer)


def tell_refused_edits() -> None:
    """Send the errors of every session's callbacks to its explorer (once a process)."""
    pn.config.exception_handler = refused


def refused(error: BaseException) -> None:
    """Panel's handler for an error in a callback, run in the session it came from."""
    doc = pn.state.curdoc
    ref = _EXPLORERS.get(doc) if doc is not None else None
    explorer = ref() if ref is not None else None
    if explorer is None or not isinstance(error, (ValueError, TypeError)):
        log.error("error in a page's callback", exc_info=error)
    if explorer is not None:
        tell(explorer, error)


def tell(explorer, error: BaseException) -> None:
    """The banner says what was refused and the sidebar shows the settings that run."""
    text = str(error).rstrip(".") or type(error).__name__
    explorer.session.notice = Notice(f"{text}. The run keeps the value it had.", "danger")
    explorer.controls.show_settings(explorer.settings)
    explorer.show_controls()
