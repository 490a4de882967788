"""Links in the explorer: open the set-up a query string names, and copy the current one.

``read_link`` turns the page's query string into a ``links.Link`` and the config the
session starts from, so a linked set-up is built once, not the default first.
``LinkView`` then hides what the link hides and keeps a "Copy link" button whose
link always matches what the sidebar shows (the browser copies it at the click; the
link also stands in a field beside the button, for browsers that refuse the
clipboard on a page served over plain http). The explorer starts the run and names
the link's bad keys (``problems_text``) in the banner. Settings that a link (or the
sidebar) asks for but the server refuses to build are replaced in the sidebar by
those that run (``running_changes``), so the page never shows a model it does not
train.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
import param
from panel.custom import JSComponent

from ..config import TrainingConfig, make_config
from ..data import dataset_defaults
from ..lessons import LESSONS
from ..links import SECTIONS, Link, link_query, parse_link


def read_link(args: dict | None = None) -> Link:
    """The page's link (``pn.state.session_args`` unless ``args`` are given); a query
    that cannot be read at all is one problem, never an exception."""
    args = (pn.state.session_args or {}) if args is None else args
    try:
        return parse_link(args)
    except Exception as err:  # the page must open whatever the query holds
        return Link(problems=[f"The link could not be read: {err}"])


def problems_text(link: Link) -> str | None:
    """One banner message naming each bad key of the link (None: none)."""
    if not link.problems:
        return None
    return (
        "Parts of this link were not used, the rest applies: "
        + "; ".join(p.rstrip(".") for p in link.problems)
        + "."
    )


class CopyLink(JSComponent):
    """The "Copy link" button: the browser copies ``link`` at the click (where the page
    may use the clipboard), and ``on_copy()`` is called on the server.

    A page component of its own rather than a Panel button with a JavaScript callback:
    Panel keeps such callbacks in a class-wide registry keyed weakly by the button
    while the callback holds the button, so a page's whole session stayed in memory
    after its tab had closed."""

    link = param.String(default="", doc="The link to copy.")

    _esm = """
export function render({ model }) {
  const button = document.createElement("button")
  button.type = "button"
  button.textContent = "Copy link"
  button.addEventListener("click", () => {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(model.link).catch(() => {})
    }
    model.send_msg({copied: true})
  })
  return button
}
"""

    _stylesheets = [
        """
button {
  font: inherit; font-size: 15px; padding: 6px 12px; border-radius: 4px; cursor: pointer;
  border: 1px solid #c8c8c8; background: #ffffff; color: #212529;
}
button:hover { filter: brightness(0.93); }
"""
    ]

    def __init__(self, on_copy: Callable[[], None] | None = None, **params):
        super().__init__(**params)
        self.on_copy = on_copy

    def _handle_msg(self, data) -> None:
        if isinstance(data, dict) and data.get("copied") and self.on_copy is not None:
            self.on_copy()


class LinkView:
    """Hides what one explorer's ``link`` hides, and makes the link of its current
    set-up: its ``settings``, and ``setup()``'s preset, lesson (or None), plane and
    whether the page is the presenter view. ``sidebar`` holds the sections and the
    widgets a link may hide. Call ``refresh()`` when the set-up changes otherwise
    than through ``settings``."""

    def __init__(self, link: Link, settings, sidebar, setup: Callable[[], dict]):
        self.link = link
        self.settings = settings
        self.sidebar = sidebar
        self.setup = setup
        self.hidden: tuple[str, ...] = ()
        self.field = pn.widgets.TextInput(
            value="",
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["phviz-link"],
            margin=(5, 10),
        )
        self.button = CopyLink(
            on_copy=self._on_copy, width=110, css_classes=["phviz-copy-link"], margin=(5, 10)
        )
        self._writing = False
        self.field.param.watch(self._on_edit, "value")  # read-only: an edit is undone
        self.refresh()
        settings.param.watch(lambda *_: self.refresh(), list(_settings()))
        if pn.state.location is not None:  # the page's address arrives once it connects
            pn.state.location.param.watch(lambda *_: self.refresh(), "href")

    def hide(self, names) -> None:
        """Hide the sidebar sections (``links.SECTIONS``) or settings' widgets named."""
        self.hidden = tuple(names)
        for name in self.hidden:
            if name in SECTIONS:
                for widget in self.sidebar.sections.get(name, ()):
                    widget.visible = False
            elif name in self.sidebar.widgets:
                self.sidebar.widgets[name].visible = False
        self.refresh()

    def query(self) -> str:
        """The query string of the current set-up."""
        setup = self.setup()
        lesson, preset, plane = setup["lesson"], setup["preset"], setup["plane"]
        return link_query(
            _unfilled(self.settings, LESSONS[lesson].config() if lesson else None, preset),
            preset=preset,
            lesson=lesson,
            plane=plane if plane != "pca" else None,
            hide=self.hidden,
            present=setup["present"],
        )

    def url(self) -> str:
        """The whole link: this page's address with ``query()``."""
        location = pn.state.location
        base = ""
        if location is not None and location.href:
            base = location.href.split("?")[0].split("#")[0]
        return f"{base}?{self.query()}"

    def refresh(self) -> None:
        """Write the current set-up's link into the field."""
        try:
            url = self.url()
        except Exception as err:  # a link that cannot be made says so in its field
            url = f"(no link: {err})"
        self._writing = True
        try:
            self.field.value = self.button.link = url
        finally:
            self._writing = False

    def _on_copy(self) -> None:
        self.refresh()
        self.field.visible = True

    def _on_edit(self, event) -> None:
        if not self._writing:
            self.refresh()


def settings_for(preset: str | TrainingConfig) -> TrainingConfig:
    """A preset (or a config) with the data set's own size, noise and split filled in
    (widgets need numbers, not None)."""
    config = make_config(preset) if isinstance(preset, str) else preset
    defaults = dataset_defaults(config.dataset)
    for key in ("n_samples", "noise", "train_fraction"):
        if getattr(config, key) is None:
            setattr(config, key, defaults[key])
    return config


def running_changes(settings: TrainingConfig, kept, rebuild) -> tuple[dict, dict]:
    """What the sidebar's ``settings`` must change to show what runs after a refused
    build (``slices.Kept``): (the data's and model's settings, names in ``rebuild``,
    which already match the running trainer; the others, which it takes as changes).
    Only the data's and model's are compared unless ``kept.every`` setting is another
    set-up's."""
    running = settings_for(make_config(**kept.values))  # as the sidebar shows them
    names = _settings() if kept.every else tuple(rebuild)
    changes = {
        name: getattr(running, name)
        for name in names
        if getattr(running, name) != getattr(settings, name)
    }
    quiet = {k: v for k, v in changes.items() if k in rebuild}
    return quiet, {k: v for k, v in changes.items() if k not in rebuild}


def _unfilled(config: TrainingConfig, base: TrainingConfig | None, preset: str):
    """``config`` with the data set's own size, noise and split back to None where the
    lesson or preset leaves them to the data set (the sidebar shows them filled in), so
    a link names only what was changed."""
    base = base if base is not None else make_config(preset)
    out = make_config(**config.values())
    defaults = dataset_defaults(config.dataset)
    for key in ("n_samples", "noise", "train_fraction"):
        if getattr(base, key) is None and getattr(config, key) == defaults[key]:
            setattr(out, key, None)
    return out


def _settings() -> tuple[str, ...]:
    return tuple(name for name in TrainingConfig.param if name != "name")
