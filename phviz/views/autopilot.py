"""Autopilot: the damping set critical for one mode of the spectrum, whole or per layer.

A mode of curvature μ = a·λ + c > 0 is critically damped at B = 2√(μ·M): it then
settles fastest without ringing. No one damping does that for every mode, so the
autopilot asks which: the stiffest (every flatter mode then creeps), the flattest
(every stiffer one rings) or the median by weight (half ring, half creep). The
spectra are of L (a = 1, c = 0); the autopilot maps them with the gains of the moment
(``modespresent.mapped``) and takes ``Spectrum.critical_damping`` of the result,
rounded to three digits so that the note names exactly what the damping is set to.

``Autopilot`` (the Modes tab's buttons) reads the spectrum the session's pictures last
published and sets the sidebar's damping, the same path the slider takes.
``LayerAutopilot`` (in the per-layer gains table) has each layer's block of the
Hessian computed on the pool, from a copy the session's slice takes, and sets each
layer's damping critical for that layer's own mode.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable

import panel as pn

from ..spectrum import MODES
from .live import Notice
from .modespresent import Gains, mapped
from .spectra import LayerModes, layer_modes_work

log = logging.getLogger(__name__)

WHY = {
    "stiffest": "it settles fastest without ringing, and every flatter mode creeps",
    "median": "half of the directions (by weight) are stiffer and ring, half flatter and creep",
    "flattest": "it settles without creeping, and every stiffer mode rings",
}
NOTE_STYLE = {"font-size": "15px", "line-height": "1.35", "white-space": "normal"}


def rounded(value: float) -> float:
    """``value`` to three significant digits (what a widget and a note show alike)."""
    return float(f"{value:.3g}")


@dataclasses.dataclass(frozen=True)
class Choice:
    """The damping an autopilot sets for the ``which`` mode of curvature ``mu`` (of the
    potential) with ``inertia``: ``exact`` = ``Spectrum.critical_damping``, ``damping``
    the same to three digits; both NaN when no mode has μ > 0."""

    which: str
    mu: float
    exact: float
    damping: float
    inertia: float

    @property
    def ok(self) -> bool:
        return math.isfinite(self.damping)


def critical_choice(spectrum, which: str, gains: Gains, inertia: float | None = None) -> Choice:
    """The damping critical for the ``which`` mode of ``spectrum`` (of L) under
    ``gains`` (``inertia``, if given, in place of theirs: a layer's own)."""
    if which not in MODES:
        raise ValueError(f"Invalid mode: {which!r} (choose one of {', '.join(MODES)})")
    inertia = gains.inertia if inertia is None else float(inertia)
    potential = mapped(spectrum, gains)
    mu = potential.mode(which)
    if not mu > 0:
        return Choice(which, mu, math.nan, math.nan, inertia)
    exact = potential.critical_damping(which, inertia)
    return Choice(which, mu, exact, rounded(exact), inertia)


def choice_note(choice: Choice, t: float | None = None) -> str:
    """What was set and why, in words (HTML)."""
    when = f" (spectrum at t = {t:.3g})" if t is not None else ""
    if not choice.ok:
        return (
            f"No mode with μ &gt; 0{when}: every direction is a saddle, which no damping "
            "makes ring, so there is nothing to make critical. The damping stays."
        )
    return (
        f"<b>damping {choice.damping:g}</b>: critical for the {choice.which} mode, "
        f"μ = a·λ + c = {choice.mu:.3g}, as B = 2√(μ·M) with M = {choice.inertia:g}"
        f"{when}: {WHY[choice.which]}."
    )


def layer_choices(spectra: dict, which: str, gains: Gains, inertias: dict) -> dict:
    """Each layer's ``Choice`` from its own spectrum (of L) and inertia, for the layers
    of ``inertias`` (those the table has now)."""
    return {
        layer: critical_choice(spectrum, which, gains, inertias[layer])
        for layer, spectrum in spectra.items()
        if layer in inertias
    }


def layer_note(choices: dict, which: str, t: float) -> str:
    """What the per-layer autopilot set and why (HTML)."""
    if not choices:
        return "No layer of this model had a spectrum: nothing was set."
    parts = []
    for layer, choice in choices.items():
        if choice.ok:
            parts.append(f"{layer}: <b>{choice.damping:g}</b> (μ = {choice.mu:.3g})")
        else:
            parts.append(f"{layer}: kept (a saddle block, no μ &gt; 0)")
    return (
        f"Each layer's damping is critical for the {which} mode of its own block of the "
        f"Hessian at t = {t:.3g}, B = 2√(μ·M) with the layer's M: " + "; ".join(parts) + "."
    )


def _buttons(prefix: str, press: Callable[[str], None], suffix: str = " mode") -> dict:
    buttons = {}
    for which in ("stiffest", "median", "flattest"):
        button = pn.widgets.Button(
            label=f"{which}{suffix}",
            color="primary" if which == "stiffest" else "default",
            css_classes=[f"{prefix}-{which}"],
            margin=(4, 5),
        )
        button.on_click(lambda _, w=which: press(w))
        buttons[which] = button
    return buttons


class Autopilot:
    """The Modes tab's buttons: the sidebar's damping set critical for one mode of the
    session's latest spectrum, under the sidebar's gains."""

    def __init__(self, session, settings):
        self.session = session
        self.settings = settings
        self.buttons = _buttons("phviz-autopilot", self.press)
        self.note = pn.pane.HTML(
            "Set the damping critical for one mode of the spectrum.",
            css_classes=["phviz-autopilot-note"],
            styles=NOTE_STYLE,
            sizing_mode="stretch_width",
            margin=(0, 10),
        )
        self.choice: Choice | None = None

    def press(self, which: str) -> None:
        shown = self.session.shown
        picture = shown.modes if shown is not None else None
        if picture is None:
            self.note.object = "No spectrum yet: it comes a moment after the run is built."
            return
        choice = critical_choice(picture.spectrum, which, Gains.of(self.settings))
        self.choice = choice
        if choice.ok:
            self.settings.damping = choice.damping  # as the slider: the run takes it
        said = choice_note(choice, picture.t)
        self.note.object = f'<div class="phviz-autopilot-said">{said}</div>'

    def panel(self) -> pn.Column:
        return pn.Column(
            pn.Row(
                pn.pane.HTML("<b>Autopilot</b>: damping critical for the", margin=(12, 5)),
                *self.buttons.values(),
            ),
            self.note,
            sizing_mode="stretch_width",
        )


class LayerAutopilot:
    """The per-layer gains table's autopilot: each layer's damping set critical for
    one mode of its own block of the Hessian.

    ``layers()`` names the table's layers now, ``inertia_of(layer)`` gives a layer's
    inertia and ``set_damping({layer: B})`` sets the table's dampings (as if typed).
    A press takes a copy in the session's next slice and computes on the pool; the
    server's tick (``update``) sets the result. Failures go to the banner.
    """

    def __init__(self, session, settings, *, layers, inertia_of, set_damping, on_notice=None):
        self.session = session
        self.settings = settings
        self.layers = layers
        self.inertia_of = inertia_of
        self.set_damping = set_damping
        self.on_notice = on_notice
        self.buttons = _buttons("phviz-layer-autopilot", self.press, suffix="")
        self.note = pn.pane.HTML(
            "", css_classes=["phviz-layer-autopilot-note"], styles=NOTE_STYLE, margin=(0, 10)
        )
        self._lock = threading.Lock()
        self._result: LayerModes | str | None = None  # from the pool, under the lock
        self._request = 0
        self._wanted: tuple[int, str] | None = None

    def widgets(self) -> list:
        title = pn.pane.HTML(
            "<b>Autopilot per layer</b>: each layer's damping critical for its own block's mode",
            margin=(8, 10, 0, 10),
        )
        return [title, pn.Row(*self.buttons.values()), self.note]

    def press(self, which: str) -> None:
        self._request += 1
        request = self._request
        self._wanted = (request, which)
        self.note.object = "Computing each layer's spectrum…"
        memory, scheduler = self.session.budget.memory_bytes, self.session.scheduler

        def take(trainer) -> None:  # in the session's slice: the trainer is its own
            work = layer_modes_work(trainer, request, memory_bytes=memory)
            scheduler.run_once(lambda: self._finish(work))

        self.session.with_trainer(take)

    def _finish(self, work) -> None:  # on the pool
        try:
            result = work()
        except Exception as err:  # said in the banner, never a traceback
            log.exception("layer spectra")
            result = f"The layers' spectra could not be computed: {err}"
        with self._lock:
            self._result = result

    def update(self) -> None:
        """On the server's thread, every tick: set what the pool computed."""
        with self._lock:
            result, self._result = self._result, None
        if result is None or self._wanted is None:
            return
        if isinstance(result, str):
            self.note.object = ""
            self._tell(Notice(result, "danger"))
            return
        request, which = self._wanted
        if result.request != request:
            return  # a later press is on its way
        inertias = {layer: self.inertia_of(layer) for layer in self.layers()}
        choices = layer_choices(result.spectra, which, Gains.of(self.settings), inertias)
        values = {layer: c.damping for layer, c in choices.items() if c.ok}
        try:
            if values:
                self.set_damping(values)
        except (ValueError, TypeError) as err:
            self._tell(Notice(f"{err}", "danger"))
            return
        self.note.object = (
            f'<div class="phviz-layer-autopilot-said">{layer_note(choices, which, result.t)}</div>'
        )

    def _tell(self, notice: Notice) -> None:
        self.session.notice = notice
        if self.on_notice is not None:
            self.on_notice()
