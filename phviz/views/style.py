"""One colour per quantity, and sizes a classroom projector can show."""

POTENTIAL = "#1f77b4"  # blue
KINETIC = "#ff7f0e"  # orange
DISSIPATED = "#7f7f7f"  # grey
HAMILTONIAN = "#000000"  # black
RESIDUAL = "#9467bd"  # purple, dashed
TRAIN = "#333333"
TEST = "#d62728"
# θ_i and p_i of coordinate i share one of these hues (none of them is an energy colour).
COORDINATES = (
    "#2ca02c",
    "#d62728",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#e6550d",
    "#637939",
    "#843c39",
)
CLASSES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
TRAIL_CMAP = "plasma"
LANDSCAPE_CMAP = "Blues_r"
ERROR_CMAP = "Reds"

LINE_WIDTH = 3
FONT_SIZES = {
    "title": "16pt",
    "labels": "15pt",
    "xticks": "14pt",
    "yticks": "14pt",
    "legend": "14pt",
}
PLOT_WIDTH = 520
PLOT_HEIGHT = 400


def coordinate_colour(k: int) -> str:
    return COORDINATES[k % len(COORDINATES)]


def common_options() -> dict:
    """Bokeh options every plot shares."""
    return dict(
        fontsize=FONT_SIZES,
        toolbar="above",
        default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
    )
