"""The sidebar's Kick control: put an energy ΔE into the momenta through the port.

A kick is an impulse p ← p + α·d that raises the kinetic energy by exactly ΔE
(``Trainer.kick``); the energy plot shows it as a step of H and of the supplied
energy, and the ledger books it, so its residual does not move.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

# The direction menu: label → ``Trainer.kick``'s direction.
DIRECTIONS = {"along p": "momentum", "random": "random"}


class KickControl:
    """ΔE, a direction and the Kick button; a press calls ``kick(energy, direction)``
    (a session's ``kick``)."""

    def __init__(self, kick: Callable[[float, str], None], energy: float = 1.0):
        self._kick = kick
        self.energy_widget = pn.widgets.FloatInput(
            label="Energy ΔE (> 0)",
            value=energy,
            step=0.5,
            width=120,
            css_classes=["phviz-kick-energy"],
        )
        self.direction_widget = pn.widgets.RadioButtonGroup(
            options=DIRECTIONS, value="momentum", width=150, css_classes=["phviz-kick-direction"]
        )
        self.button = pn.widgets.Button(
            label="Kick", width=80, align="end", css_classes=["phviz-kick"]
        )
        self.button.on_click(lambda _: self.kick())

    def kick(self) -> None:
        """Ask for the kick the widgets describe (a bad ΔE: the banner says)."""
        self._kick(self.energy_widget.value, self.direction_widget.value)

    def panels(self) -> list:
        return [pn.Row(self.energy_widget, self.button), self.direction_widget]
