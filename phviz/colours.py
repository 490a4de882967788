"""One colour per quantity, shared by the explorer's Bokeh plots and the paper's
matplotlib figures (plain hex strings: no plotting library is imported here)."""

POTENTIAL = "#1f77b4"  # blue
KINETIC = "#ff7f0e"  # orange
DISSIPATED = "#7f7f7f"  # grey
HAMILTONIAN = "#000000"  # black
RESIDUAL = "#9467bd"  # purple, dashed
SUPPLIED = "#009e73"  # bluish green: energy put in through the port (kicks)
TEST = "#d62728"  # red
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
# The paper's linear-boundary figure: class 1 red, class 2 blue.
TWO_CLASSES = ("#d62728", "#1f77b4")


def coordinate_colour(k: int) -> str:
    return COORDINATES[k % len(COORDINATES)]
