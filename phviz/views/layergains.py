"""Per-layer gains: damping and inertia for each layer of the model, in the sidebar.

A layer is a module prefix of the model's parameter names (``"0"`` for ``"0.weight"``
and ``"0.bias"``), the keys phviz's gain mappings take. Each row's two inputs set that
layer's gain on the running trainer; layers left alone keep the run's scalar gain,
and moving the scalar slider sets every layer again. The rows follow the model when
it is rebuilt. Plain inputs in rows, so the page loads no table library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import panel as pn

from ..dynamics import check_gain_value
from .autopilot import LayerAutopilot
from .layout import lazy_section
from .live import Notice

LAYER_GAINS = ("damping", "inertia")


def layer_prefixes(names: Sequence[str]) -> list[str]:
    """The layers of parameters ``names``, in order: each name without its last part
    (``"0.weight"`` → ``"0"``); a name without a dot is a layer of its own."""
    layers: list[str] = []
    for name in names:
        prefix = name.rsplit(".", 1)[0] if "." in name else name
        if prefix not in layers:
            layers.append(prefix)
    return layers


def layer_mapping(layers: Sequence[str], scalar: float, overrides: dict[str, float]) -> dict:
    """One gain for every layer: the layer's own where set, else the run's ``scalar``."""
    unknown = set(overrides) - set(layers)
    if unknown:
        raise ValueError(f"No layer is named {', '.join(sorted(unknown))}")
    return {layer: float(overrides.get(layer, scalar)) for layer in layers}


def checked_layer_gain(gain: str, layer: str, value) -> float:
    """``value`` as one layer's ``gain``, or a ``ValueError`` in words for the banner
    (damping ≥ 0, inertia > 0, finite)."""
    if value is None:
        raise ValueError(f"Invalid {gain} for layer {layer!r}: empty (enter a number)")
    return check_gain_value(gain, value, where=f" for layer {layer!r}")


def layer_shapes(parameters: Sequence[tuple[str, tuple]], layers: Sequence[str]) -> dict:
    """A short description of each layer for its row (``2→16``), from the shape of its
    weight among ``parameters`` ((name, shape) pairs, as ``RunInfo`` has them)."""
    shapes = dict(parameters)
    out = {}
    for layer in layers:
        shape = shapes.get(f"{layer}.weight")
        out[layer] = f"{shape[1]}→{shape[0]}" if shape is not None and len(shape) == 2 else ""
    return out


class LayerGains:
    """The sidebar's table of per-layer gains for one ``LiveSession`` and its
    ``settings``; ``on_notice()`` shows a notice it posted at once."""

    def __init__(self, session, settings, on_notice: Callable[[], None] | None = None):
        self.session = session
        self.settings = settings
        self.on_notice = on_notice
        self.layers: list[str] = []
        self.overrides: dict[str, dict[str, float]] = {g: {} for g in LAYER_GAINS}
        self.inputs: dict[tuple[str, str], pn.widgets.FloatInput] = {}
        self._build = None  # the run whose layers the rows show
        self._quiet = False  # the inputs are being set from here, not by the user
        self.rows = pn.Column(sizing_mode="stretch_width", css_classes=["phviz-layer-gains"])
        self.note = pn.pane.HTML(
            "",
            sizing_mode="stretch_width",
            styles={"font-size": "14px", "line-height": "1.3"},
            margin=(0, 10, 8, 10),
        )
        settings.param.watch(self._on_scalar, list(LAYER_GAINS))
        self.autopilot = LayerAutopilot(
            session,
            settings,
            layers=lambda: list(self.layers),
            inertia_of=lambda layer: self._value("inertia", layer),
            set_damping=lambda values: self.set_layers("damping", values),
            on_notice=self._told,
        )

    def panels(self) -> list:
        """The table's section of the sidebar's Gains, made on its first expand."""
        title = "Per-layer gains (damping B, inertia M)"

        def build() -> list:
            return [self.rows, self.note, *self.autopilot.widgets()]

        return [lazy_section(title, build, "phviz-layer-section")]

    def set_layers(self, gain: str, values: dict[str, float]) -> None:
        """Set ``gain`` of the layers in ``values`` as if typed into the table (the
        autopilot's): the inputs show it and the run takes it. Raises ``ValueError``
        on a bad value, changing nothing."""
        checked = {layer: checked_layer_gain(gain, layer, v) for layer, v in values.items()}
        layer_mapping(self.layers, 0.0, checked)  # every layer is the table's
        self.overrides[gain].update(checked)
        for layer, value in checked.items():
            self._set_input(gain, layer, value)
        self._apply(gain)
        self._show_note()

    def update(self) -> None:
        """Follow the model: new rows when the session built a new trainer."""
        self.autopilot.update()
        run = self.session.run
        if run is None or run.build == self._build:
            return
        self._build = run.build
        layers = layer_prefixes(run.names)
        if layers != self.layers:
            self.layers = layers
            self.overrides = {g: {} for g in LAYER_GAINS}
            self._make_rows(layer_shapes(run.parameters, layers))
        else:  # the same layers: the run keeps the table's gains
            for gain in LAYER_GAINS:
                if self.overrides[gain]:
                    self._apply(gain)
        self._show_note()

    # ------------------------------------------------------------ rows
    def _make_rows(self, shapes: dict[str, str]) -> None:
        header = pn.Row(
            pn.pane.HTML("<b>layer</b>", width=100, margin=(0, 5)),
            pn.pane.HTML("<b>damping</b>", width=90, margin=(0, 5)),
            pn.pane.HTML("<b>inertia</b>", width=90, margin=(0, 5)),
        )
        rows, self.inputs = [header], {}
        for layer in self.layers:
            cells = []
            for gain in LAYER_GAINS:
                widget = pn.widgets.FloatInput(
                    value=self._value(gain, layer),
                    step=0.1,
                    width=90,
                    margin=(2, 5),
                    css_classes=[f"phviz-layer-{gain}", f"phviz-layer-{gain}-{layer}"],
                )
                widget.param.watch(
                    lambda event, g=gain, n=layer: self._on_edit(g, n, event), "value"
                )
                self.inputs[gain, layer] = widget
                cells.append(widget)
            label = f"{layer} <small>({shapes[layer]})</small>" if shapes.get(layer) else layer
            rows.append(pn.Row(pn.pane.HTML(label, width=100, margin=(6, 5)), *cells))
        self.rows.objects = rows

    def _value(self, gain: str, layer: str) -> float:
        return float(self.overrides[gain].get(layer, getattr(self.settings, gain)))

    def _set_input(self, gain: str, layer: str, value: float) -> None:
        widget = self.inputs.get((gain, layer))
        if widget is None:
            return
        self._quiet = True
        try:
            widget.value = value
        finally:
            self._quiet = False

    # ------------------------------------------------------------ events
    def _on_edit(self, gain: str, layer: str, event) -> None:
        if self._quiet:
            return
        try:
            value = checked_layer_gain(gain, layer, event.new)
        except (ValueError, TypeError) as err:
            kept = self._value(gain, layer)
            self.session.notice = Notice(f"{err}. The layer keeps {kept:g}.", "danger")
            self._set_input(gain, layer, self._value(gain, layer))
            self._told()
            return
        old = self.overrides[gain].get(layer)
        self.overrides[gain][layer] = value
        try:
            self._apply(gain)
        except (ValueError, TypeError) as err:
            if old is None:
                self.overrides[gain].pop(layer)
            else:
                self.overrides[gain][layer] = old
            self.session.notice = Notice(f"{err}", "danger")
            self._set_input(gain, layer, self._value(gain, layer))
        self._show_note()
        self._told()

    def _told(self) -> None:
        if self.on_notice is not None:
            self.on_notice()

    def _on_scalar(self, *events) -> None:
        """The scalar slider sets every layer's gain: the table follows it."""
        for event in events:
            self.overrides[event.name] = {}
            for layer in self.layers:
                self._set_input(event.name, layer, float(event.new))
        self._show_note()

    def _apply(self, gain: str) -> None:
        """The table's gains to the running trainer (its next interval on)."""
        scalar = getattr(self.settings, gain)
        mapping = layer_mapping(self.layers, scalar, self.overrides[gain])
        self.session.set_gains(**{gain: mapping})

    def _show_note(self) -> None:
        parts = []
        for gain in LAYER_GAINS:
            own = self.overrides[gain]
            if own:
                each = ", ".join(f"{layer}: {v:g}" for layer, v in own.items())
                scalar = getattr(self.settings, gain)
                parts.append(f"{gain} by layer ({each}; other layers {scalar:g})")
        self.note.object = (
            f'<div class="phviz-layer-note">{"; ".join(parts)}</div>'
            if parts
            else '<div class="phviz-layer-note">every layer takes the sliders\' gains</div>'
        )
