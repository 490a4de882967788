"""How to read the explorer: one short text per plot and per term of the status line.

The texts are written for a student who has not read the documentation: what each
curve, colour and mark is, and what a good run looks like. They live here, in one
place, so the explorer's info icons, the status line's hovers and the documentation
read the same words. Plain strings, no GUI code.
"""

from __future__ import annotations

# How to read each plot, by the name the page's info icons use.
PLOTS: dict[str, str] = {
    "landscape": (
        "The loss landscape on a flat slice through the weights: lighter is lower "
        "potential V = a·loss + weight decay, darker blue higher (the bar gives log₁₀ V). "
        "The line is the path the weights took, its dots purple early to yellow late; "
        "the orange dot is where they are now. "
        "'97 % of path' in the title: the slice holds 97 % of the path's motion (its "
        "variance); the rest happens in directions this picture cannot show."
    ),
    "profile": (
        "Does the landscape tell the truth? Solid blue: the potential V the weights "
        "really had at each time t (on the whole training set). Dashed grey: the value "
        "of the drawn surface right under the path, where the path projects onto the "
        "slice; the red band between them is the gap. Where the two lines lie on each "
        "other the picture above is faithful; where they part, the path went through "
        "directions the slice does not show, and the surface under it is not the loss "
        "the run had."
    ),
    "energy": (
        "Energy on a log scale. H (black) = kinetic (orange: the weights' motion) + "
        "potential (blue: a·loss plus weight decay). Grey: energy the damping has taken "
        "out so far; green: energy put in by kicks. H only falls, except at batch "
        "switches (▲), where the loss itself changes, and at kicks. Dashed purple: the ledger "
        "residual, how far H(t) − H(0) + dissipated − supplied is from zero: the "
        "integrator's own error, which should stay tiny. Dotted: jumps of H from "
        "changing gains while running."
    ),
    "parameters": (
        "θ_i(t): a sample of the network's weights over time, one colour each. They move "
        "like balls rolling in the landscape: with little damping they swing past the "
        "valley floor and back, with much damping they creep towards it."
    ),
    "momenta": (
        "p_i(t): the momenta of the same weights (dashed, same colours as θ_i): inertia "
        "times velocity. Going downhill builds momentum, the damping drains it; when "
        "every p_i stays at zero the run has settled."
    ),
    "phase": (
        "Phase portrait of one weight: its value θ_k across, its momentum p_k up. Grey "
        "lines are levels of constant energy with the other weights held still: without "
        "damping the point would circle along one. Damping makes it spiral inwards. "
        "The dot is now."
    ),
    "regions": (
        "Decision regions: the background's colour is the class the network predicts "
        "there. Dots are training points, triangles held-out test points, coloured by "
        "their true class: a point on the other colour is misclassified."
    ),
    "field": (
        "The learned vector field (red arrows) against the true one (grey). The "
        "background is the error ‖Ψ − f‖ between them, darker red where larger; it "
        "fades as the network learns."
    ),
    "confusion": (
        "Test confusion matrix: a row per true class, a column per predicted class; "
        "each number counts held-out points. A perfect classifier has all of them on "
        "the diagonal."
    ),
    "none": "This task has no picture of its own; the other plots show the run.",
    "modes": (
        "Every direction of the weights is a damped oscillator of its own, with curvature "
        "μ = a·λ + c. The bars count the directions at each μ (both axes logarithmic), "
        "coloured by what the damping does to them now: orange rings, blue creeps, "
        "green is near critical; the dashed line is the critical curvature μ = B²/4M. "
        "Triangles mark single modes. Saddle directions (μ < 0, purple) sit in the small "
        "panel on the left: no damping makes them ring. On the right: how far the weights "
        "moved along the three stiffest and three flattest directions since the spectrum "
        "was taken. The autopilot sets the damping critical for one mode."
    ),
    "gainmap": (
        "Each cell is one short training run with the gains at its centre, coloured by "
        "its final loss (or time to the target): yellow high, dark purple low. White "
        "lines (their key is right of the map): critical damping B = 2√((a·λ + c)·M) "
        "of the flattest (λ_min, dotted) and stiffest (λ_max, dashed) direction, thin "
        "at the start of the run and thick at its end; at smaller B that direction "
        "swings, at larger B it creeps. Click a cell to use its gains."
    ),
}

# What each term of the status line means, by its label there.
STATUS: dict[str, str] = {
    "t": "Time t of the dynamics (not seconds on the clock): how far the weights have moved.",
    "epoch": "Passes through the training data so far.",
    "train loss": "The loss on the training data at the current weights.",
    "test loss": "The loss on held-out data the network never trains on.",
    "accuracy": "The share of held-out points classified right.",
    "H": (
        "The Hamiltonian, the run's total energy: a·loss + weight decay + kinetic "
        "energy. It only falls, except at batch switches and kicks."
    ),
    "ledger": (
        "The energy ledger's residual: H(t) − H(0) + energy dissipated − energy "
        "supplied, zero for the exact dynamics; what is left is the integrator's error."
    ),
    "nfe": "Function evaluations: how many times the loss's gradient was computed so far.",
    "steps/s": "Switching intervals integrated per second of wall-clock time.",
    "device": "Where the computation runs (cpu, or a GPU: cuda).",
}


def plot_help(name: str) -> str:
    """How to read the plot called ``name`` (a task kind included); '' if none."""
    return PLOTS.get(name, "")
