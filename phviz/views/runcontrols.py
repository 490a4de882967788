"""The run's buttons (Run/Pause, Step, Reset): each press says what it asked for.

A press must act on what its button showed when it was pressed. With one toggling
button the server decides what a press means from its own state at the moment the
press arrives, which can differ from what the page showed (a run that reached its
horizon while the press travelled turns a Pause into a Run). So here the page sends
the action itself: "pause" when the button read Pause, "run" when it read Run.

A Bokeh button also builds a new element whenever its label or colour changes; a
press whose pointerdown lands on the old element and pointerup on the new one makes
no click at all. These buttons are made once and only their text and class change,
so a press always ends on the element it began on.
"""

from __future__ import annotations

from collections.abc import Callable

import param
from panel.custom import JSComponent

ACTIONS = ("run", "pause", "step", "reset")


class RunControls(JSComponent):
    """Run/Pause, Step and Reset; ``on_press(action)`` for each press (one of
    ``ACTIONS``), on the server's thread."""

    running = param.Boolean(default=False, doc="Whether the run plays: the button reads Pause.")

    _esm = """
export function render({ model }) {
  const row = document.createElement("div")
  row.className = "phviz-run-controls"
  // Each button sits in an element named for it: the handle pages and tests find it by.
  const button = (name, text) => {
    const holder = document.createElement("div")
    holder.className = name
    const el = document.createElement("button")
    el.type = "button"
    el.textContent = text
    holder.append(el)
    row.append(holder)
    return el
  }
  const run = button("phviz-run", "Run")
  const step = button("phviz-step", "Step")
  const reset = button("phviz-reset", "Reset")
  const show = () => {
    run.textContent = model.running ? "Pause" : "Run"
    run.className = model.running ? "pause" : "run"
  }
  show()
  model.on("running", show)
  run.addEventListener("click", () => {
    model.send_msg({press: run.textContent === "Pause" ? "pause" : "run"})
  })
  step.addEventListener("click", () => model.send_msg({press: "step"}))
  reset.addEventListener("click", () => model.send_msg({press: "reset"}))
  return row
}
"""

    _stylesheets = [
        """
.phviz-run-controls { display: flex; gap: 6px; }
button {
  font: inherit; font-size: 15px; padding: 6px 12px; border-radius: 4px; cursor: pointer;
  border: 1px solid #c8c8c8; background: #ffffff; color: #212529; min-width: 80px;
}
button:hover { filter: brightness(0.93); }
button.run { background: #0d6efd; border-color: #0d6efd; color: #ffffff; min-width: 95px; }
button.pause { background: #ffc107; border-color: #ffc107; color: #212529; min-width: 95px; }
"""
    ]

    def __init__(self, on_press: Callable[[str], None] | None = None, **params):
        params.setdefault("margin", (5, 10))
        super().__init__(**params)
        self.on_press = on_press

    @property
    def label(self) -> str:
        """What the Run/Pause button reads."""
        return "Pause" if self.running else "Run"

    def press(self, action: str) -> None:
        """A press of the button for ``action``, as the page sends it."""
        if action not in ACTIONS:
            raise ValueError(f"Invalid action: {action!r} (choose one of {', '.join(ACTIONS)})")
        if self.on_press is not None:
            self.on_press(action)

    def _handle_msg(self, data) -> None:
        action = data.get("press") if isinstance(data, dict) else None
        if action in ACTIONS:  # anything else is no press of ours
            self.press(action)
