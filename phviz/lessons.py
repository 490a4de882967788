"""Lessons: a set-up and a short text for a class, what to watch and what to try next.

A lesson is a preset with a few settings changed, so a teacher can open it from a
link (``?lesson=underdamped``) and every student sees the same run. The numbers in
the texts were measured with the set-ups here (``tests/test_lessons.py`` checks the
claims the texts make).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import TrainingConfig, make_config


@dataclass(frozen=True)
class Lesson:
    """A named set-up (``preset`` plus ``settings``) and its text (Markdown)."""

    title: str
    text: str
    preset: str = "default"
    settings: dict = field(default_factory=dict)
    plane: str = "pca"

    def config(self) -> TrainingConfig:
        return make_config(self.preset, **self.settings)


LESSONS: dict[str, Lesson] = {
    "underdamped": Lesson(
        "Under-damped: energy sloshes between kinetic and potential",
        "Damping B = 0.1 is far below critical (about 3 here, for the stiffest "
        "direction). **Watch** the energy plot: kinetic (orange) and potential (blue) "
        "trade places again and again while H (black) only ever falls. The momenta swing "
        "through zero and the path overshoots the valley floor on the landscape. "
        "**Try** raising B towards the critical value the sidebar estimates, and "
        "compare with the *Critically damped* and *Over-damped* lessons on the same data.",
        settings={"damping": 0.1},
    ),
    "critical": Lesson(
        "Critically damped: the fastest settling without overshoot",
        "Damping B = 3 is close to critical for the stiffest direction, "
        "B = 2√(M·(a·λ + c)) with λ the largest curvature of the loss. **Watch** the "
        "stiffest coordinates settle without ringing, while flatter directions (smaller λ, "
        "so a smaller critical B) are already over-damped and creep. **Try** the "
        "*Under-damped* and *Over-damped* lessons and compare how fast the loss falls.",
        settings={"damping": 3.0},
    ),
    "overdamped": Lesson(
        "Over-damped: gradient flow in slow motion",
        "Damping B = 10 is well above critical. The momenta stay small and "
        "θ̇ ≈ −(a/B)·∇L: plain gradient descent with a step a/B. **Watch** the path go "
        "straight downhill and the kinetic energy stay tiny; the loss falls more slowly "
        "than with less damping. **Try** halving B, or raising the potential gain a, "
        "which speeds up an over-damped run just as a larger learning rate would.",
        settings={"damping": 10.0},
    ),
    "inertia-vs-gain": Lesson(
        "Inertia against potential gain: what a learning rate is",
        "Dividing the momentum equation by M shows that the path θ(t) depends only on "
        "a/M and B/M. Here M = 2, a = 2 and B = 0.8 (all twice the default): **watch** "
        "θ(t) trace exactly the default run's path, while p and H are twice as large. "
        "The discrete optimizer's learning rate is a·h²/M and its momentum 1 − h·B/M "
        "(see `phviz.optim`). **Try** raising a alone (a larger learning rate: faster, "
        "more oscillation) or M alone (a heavier ball: slower, less damped).",
        settings={"inertia": 2.0, "potential_gain": 2.0, "damping": 0.8},
    ),
    "minibatches": Lesson(
        "Mini-batches: a switched system, and H jumps",
        "With batches of 16 points the loss changes every switching interval Δt = 0.1: "
        "θ and p stay continuous but the potential, and so H, jumps at each switch "
        "(the triangles on the energy plot). Between switches H still only falls. The "
        "energy ledger books the jumps apart, so its residual stays at the integrator's "
        "error. **Try** a longer Δt (each batch held longer: bigger, rarer jumps) or a "
        "larger batch (smaller jumps).",
        settings={"batch_size": 16},
    ),
    "weight-decay": Lesson(
        "Weight decay: a spring that pulls every weight to zero",
        "Weight decay c adds (c/2)‖θ‖² to the potential, a spring on every parameter. "
        "With c = 0.5 on the paper's two Gaussian classes the weights settle much closer "
        "to zero than without it (watch the θ plot's scale) and the boundary is less "
        "sharp. **Try** c = 0 and c = 2 and compare the weights' size and the test "
        "accuracy; this is the paper's weight-decay sweep.",
        preset="paper-blobs",
        settings={"weight_decay": 0.5},
    ),
    "paper-blobs": Lesson(
        "The paper's linear boundary",
        "The paper's first experiment: a linear model separating two Gaussian classes, "
        "with the paper's gains a = 2, M = 0.5 and weight decay 0.002, here full batch "
        "and damping 0.3 so the run settles in view. **Watch** the decision boundary "
        "turn into place while H decays. **Try** the preset *paper-blobs-online* for "
        "the paper's own stiff run (damping 100, one sample per interval).",
        preset="paper-blobs",
    ),
    "paper-duffing": Lesson(
        "The paper's Duffing oscillator",
        "The paper's second experiment: an MLP 2-16-16-2 learns the vector field of a "
        "Duffing oscillator, starting with random momenta (kinetic energy about ten "
        "times the loss). **Watch** the learned arrows (red) turn onto the true field "
        "(grey) and the error map fade. **Try** damping 0.1 and 2: with too little the "
        "initial kinetic energy keeps the weights swinging, with too much they creep.",
        preset="paper-duffing",
    ),
    "kick": Lesson(
        "A kick out of a poor minimum",
        "A small network (one hidden layer of 3, tanh) on xor settles by the horizon "
        "t = 150 in a poor minimum: train loss 0.274, 89 % of the training points right, "
        "‖p‖ ≈ 0.005 and nothing left to move it (the loss fell by only 0.002 since "
        "t = 100). **Try** the Kick control at t = 150 with ΔE = 10 along p, then Run: the "
        "impulse puts exactly ΔE into the momenta through the port, so H steps up by 10 "
        "(booked as supplied energy, the green curve, so the ledger's residual does not "
        "move), and the weights climb out into a lower valley: loss 0.157 and 94 % right "
        "at t = 350. A smaller kick may roll back into the same minimum; kick again, or "
        "try a random direction.",
        settings={
            "dataset": "xor",
            "hidden": "3",
            "activation": "tanh",
            "damping": 0.5,
            "model_seed": 1,
            "solver": "conformal_leapfrog",
            "step_size": 0.05,
            "horizon": 150.0,
        },
    ),
    "modes": Lesson(
        "Modes: which directions ring and which creep",
        "Open the **Modes** tab. Each direction of the Hessian is a damped oscillator of "
        "its own, with curvature μ = a·λ + c: damping B = 0.4 makes it ring where μ lies "
        "above the dashed critical line μ = B²/4M = 0.04 and creep below it. At the start "
        "the stiffest direction has μ ≈ 1.8 and rings, while about two thirds of the "
        "spectrum's weight is flatter than 0.04 and creeps, and a quarter are saddles "
        "(μ < 0, shown apart). **Watch** the stiffest directions ring on the right while "
        "the flattest creep, and the stiff end of the spectrum stiffen as the run goes on "
        "(μ ≈ 3.3 by t = 20). **Try** the autopilot: *stiffest mode* sets B ≈ 2.7 at the "
        "start, critical for it, so nothing rings any more; *median mode* and *flattest "
        "mode* set B below 0.1, and nearly every direction rings.",
        settings={"damping": 0.4},
    ),
}


def lesson(name: str) -> Lesson:
    """The lesson called ``name``; an unknown name is a ``ValueError`` listing them."""
    try:
        return LESSONS[name]
    except KeyError:
        raise ValueError(f"Unknown lesson: {name!r} (choose one of {', '.join(LESSONS)})") from None
