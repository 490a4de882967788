"""The explorer's sidebar: run controls, the run's settings and the view's choices.

Parts that few visits use (the solver's details, the Kick, your own data, per-layer
gains) are collapsed sections made on their first expand (``lazy_section``): a page
that never opens them neither builds nor sends them, so it is ready sooner.

Each setting's widget is made from its ``TrainingConfig`` parameter (label, value,
hard bounds, slider range and step are the parameter's; the menus' values are
``config.CHOICES``), so the sidebar and the CLI cannot disagree about a setting.
"""

from __future__ import annotations

import panel as pn
import param

from ..config import CHOICES, MAX_TRACKED, TrainingConfig
from .layout import lazy_section

# The settings in the sidebar, by section.
SECTIONS = {
    "Data": ("dataset", "noise", "n_samples", "train_fraction"),
    "Model": ("architecture", "hidden", "activation"),
    "Gains": ("damping", "inertia", "potential_gain", "weight_decay"),
    "Solver": (
        "batch_size",
        "switching_interval",
        "solver",
        "rtol",
        "atol",
        "step_size",
        "max_steps",
        "step_control",
    ),
    "Device": ("device",),
}
# The Solver section's settings shown in its collapsed details (the rest stay in view).
SOLVER_DETAILS = (
    "batch_size",
    "switching_interval",
    "rtol",
    "atol",
    "step_size",
    "max_steps",
    "step_control",
)
# A widget for each kind of parameter (the first that matches), and where one differs.
BY_TYPE = (
    (param.Selector, pn.widgets.Select),
    (param.String, pn.widgets.TextInput),
    (param.Integer, pn.widgets.IntSlider),
    (param.Number, pn.widgets.EditableFloatSlider),
)
WIDGETS = {
    "architecture": pn.widgets.RadioButtonGroup,
    "device": pn.widgets.RadioButtonGroup,
    "train_fraction": pn.widgets.FloatSlider,
    "max_steps": pn.widgets.IntInput,
}


def setting_widget(settings: TrainingConfig, name: str) -> pn.widgets.Widget:
    """The widget of one setting, linked both ways to ``settings``."""
    parameter = settings.param[name]
    if name in CHOICES:
        return pn.widgets.Select.from_param(parameter, options=CHOICES[name])
    kind = WIDGETS.get(name) or next(w for t, w in BY_TYPE if isinstance(parameter, t))
    widget = kind.from_param(parameter)
    if isinstance(widget, pn.widgets.EditableFloatSlider):
        # a typed value out of bounds reaches the settings, whose refusal names the
        # setting and its bounds (the widget's own would refuse it without a word)
        widget.fixed_start = widget.fixed_end = None
    return widget


class Sidebar:
    """The sidebar's widgets; ``panels()`` lays them out.

    ``settings`` are the run's settings (a widget each), ``buttons`` the run's
    ``RunControls`` and ``kick`` its ``KickControl``; the view's own choices come as
    their parameters (``speed``, ``preset``, ``plane``, ``plane_x``, ``plane_y``,
    ``phase_coordinate``), and ``on_new_sample()`` is called for another sample of
    tracked coordinates.
    """

    def __init__(
        self,
        settings: TrainingConfig,
        *,
        buttons,
        kick,
        speed: param.Parameter,
        preset: param.Parameter,
        plane: param.Parameter,
        plane_x: param.Parameter,
        plane_y: param.Parameter,
        phase_coordinate: param.Parameter,
        on_new_sample,
    ):
        s = settings
        self.buttons = buttons
        self.kick = kick
        self.speed_widget = pn.widgets.Select.from_param(
            speed, label="Speed", css_classes=["phviz-speed"]
        )
        self.preset_widget = pn.widgets.Select.from_param(preset, label="Preset")
        self.new_data_button = pn.widgets.Button(label="New data (new seed)", width=160)
        self.new_data_button.on_click(lambda _: setattr(s, "data_seed", s.data_seed + 1))
        self.device_note = pn.pane.Markdown("", margin=(0, 10))
        self.sections: dict[str, list] = {}  # filled by ``panels``
        self.widgets = {
            name: setting_widget(s, name) for names in SECTIONS.values() for name in names
        }
        for key, widget in self.widgets.items():  # a handle for tests and styling
            widget.css_classes = [*widget.css_classes, f"phviz-{key.replace('_', '-')}"]
        self.plane_widget = pn.widgets.RadioBoxGroup.from_param(plane)
        self.plane_x_widget = pn.widgets.IntInput.from_param(plane_x, label="θ index x")
        self.plane_y_widget = pn.widgets.IntInput.from_param(plane_y, label="θ index y")
        self.sample_button = pn.widgets.Button(label="New sample of θ_i", width=160)
        self.sample_button.on_click(lambda _: on_new_sample())
        self.phase_widget = pn.widgets.IntSlider.from_param(
            phase_coordinate,
            start=0,
            end=MAX_TRACKED - 1,
            label="Phase portrait of sample #",
        )
        self.damping_note = pn.pane.HTML(
            '<div class="phviz-damping-note">critical damping: estimating…</div>',
            css_classes=["phviz-critical"],
            styles={"font-size": "15px", "white-space": "normal", "line-height": "1.3"},
            sizing_mode="stretch_width",
            margin=(0, 10, 8, 10),
        )

    def show_settings(self, settings: TrainingConfig) -> None:
        """Each setting's widget shows the value ``settings`` hold (after a refused edit)."""
        for name, widget in self.widgets.items():
            value = getattr(settings, name)
            if widget.value != value:
                widget.value = value

    def all_widgets(self) -> list:
        """Every widget of the sidebar, shown or not yet built into a section."""
        shown = [w for section in self.sections.values() for w in section]
        own = [self.buttons, self.speed_widget, self.preset_widget, self.new_data_button]
        views = [self.plane_widget, self.plane_x_widget, self.plane_y_widget]
        return [*shown, *own, *views, *self.widgets.values(), *self.kick.panels()]

    def panels(self, gains: list, lessons: list = (), data: list = ()) -> list:
        """The sidebar's contents, top to bottom; ``gains`` follow the gain sliders (the
        Kick after them), ``lessons`` the preset and ``data`` the data set's settings.
        ``sections`` keeps them by the names links hide them by."""
        w = self.widgets
        self.sections = {
            "controls": [
                self.buttons,
                self.speed_widget,
                self.preset_widget,
            ],
            "lessons": list(lessons),
            "data": [*_section("Data", w), self.new_data_button, *data],
            "model": _section("Model", w),
            "gains": [
                pn.pane.Markdown("### Gains"),
                w["damping"],
                self.damping_note,
                w["inertia"],
                w["potential_gain"],
                w["weight_decay"],
                *gains,
                lazy_section("Kick", self.kick.panels, "phviz-kick-section"),
            ],
            "solver": [
                pn.pane.Markdown("### Solver"),
                w["solver"],
                lazy_section(
                    "Solver details",
                    lambda: [w[name] for name in SOLVER_DETAILS],
                    "phviz-solver-details",
                ),
            ],
            "device": [*_section("Device", w), self.device_note],
            "plane": [
                pn.pane.Markdown("### Landscape plane"),
                self.plane_widget,
                pn.Row(self.plane_x_widget, self.plane_y_widget),
            ],
            "tracked": [
                pn.pane.Markdown("### Tracked coordinates"),
                self.sample_button,
                self.phase_widget,
            ],
        }
        return [widget for section in self.sections.values() for widget in section]


def _section(title: str, widgets: dict) -> list:
    return [pn.pane.Markdown(f"### {title}"), *(widgets[name] for name in SECTIONS[title])]
