"""The discrete-time port-Hamiltonian step as a ``torch.optim.Optimizer``.

One step of semi-implicit (symplectic) Euler with step h on the equations of
``phviz.dynamics``:

    p ← p − h·(a∇L(θ) + cθ + B M⁻¹p)
    θ ← θ + h·M⁻¹p

With scalar gains this is exactly heavy-ball momentum, ``torch.optim.SGD`` with

    lr = a·h²/m,  momentum = 1 − h·B/m,  weight_decay = c/a,

whose buffer is b = −p/(h·a): substituting gives b ← momentum·b + ∇L + (c/a)θ and
θ ← θ − lr·b, SGD's update step for step (``tests/test_optim.py`` checks it).

Its momentum 1 − h·B/m turns negative once h·B/m > 1 (stiff damping). The conformal
scheme solves the damping exactly instead,

    p ← e^{−h·B/m}·(p − h·(a∇L(θ) + cθ)),  θ ← θ + h·M⁻¹p,

which is heavy-ball momentum with momentum = e^{−h·B/m} ∈ (0, 1] for any B, and
lr = a·h²·e^{−h·B/m}/m (buffer b = −p/(h·a·e^{−h·B/m})).
"""

from __future__ import annotations

import torch

from .dynamics import check_gain_value, damping_decay

SCHEMES = ("euler", "conformal")


def symplectic_euler_step(theta, p, grad, *, h, damping, inertia, potential_gain, weight_decay):
    """Update ``theta`` and ``p`` in place by one semi-implicit Euler step."""
    force = potential_gain * grad + weight_decay * theta + (damping / inertia) * p
    p.sub_(h * force)
    theta.add_(p, alpha=h / inertia)


def conformal_euler_step(theta, p, grad, *, h, damping, inertia, potential_gain, weight_decay):
    """Update ``theta`` and ``p`` in place: a kick, the exact damping flow, a drift."""
    p.sub_(h * (potential_gain * grad + weight_decay * theta))
    p.mul_(damping_decay(damping, inertia, h))
    theta.add_(p, alpha=h / inertia)


_STEPS = {"euler": symplectic_euler_step, "conformal": conformal_euler_step}


class PortHamiltonianSGD(torch.optim.Optimizer):
    """Semi-implicit Euler on H = a·L + (c/2)‖θ‖² + ½pᵀM⁻¹p with damping B.

    Args:
        params: parameters or parameter groups (groups may set their own gains).
        step_size: the time step h > 0.
        damping: B ≥ 0. inertia: m > 0. potential_gain: a > 0. weight_decay: c ≥ 0.
        scheme: "euler" (semi-implicit Euler) or "conformal" (damping solved exactly,
            stable for any damping).

    The momenta p live in ``state[param]["momentum"]`` and start at zero.
    """

    def __init__(
        self,
        params,
        step_size: float = 0.1,
        *,
        damping: float = 1.0,
        inertia: float = 1.0,
        potential_gain: float = 1.0,
        weight_decay: float = 0.0,
        scheme: str = "euler",
    ):
        defaults = _checked(
            dict(
                scheme=scheme,
                step_size=step_size,
                damping=damping,
                inertia=inertia,
                potential_gain=potential_gain,
                weight_decay=weight_decay,
            )
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """A group's own gains, step and scheme are checked as the defaults are."""
        own = {k: v for k, v in param_group.items() if k != "params"}
        super().add_param_group({**param_group, **_checked({**self.defaults, **own})})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(param)
                _STEPS[group["scheme"]](
                    param,
                    state["momentum"],
                    param.grad,
                    h=group["step_size"],
                    damping=group["damping"],
                    inertia=group["inertia"],
                    potential_gain=group["potential_gain"],
                    weight_decay=group["weight_decay"],
                )
        return loss

    @staticmethod
    def heavy_ball_equivalent(
        step_size,
        *,
        damping=1.0,
        inertia=1.0,
        potential_gain=1.0,
        weight_decay=0.0,
        scheme="euler",
    ) -> dict:
        """The ``torch.optim.SGD`` settings that take exactly the same steps.

        The Euler scheme's momentum 1 − h·B/m is refused when h·B/m > 1 (it would be
        negative: each step would reverse the velocity); the conformal scheme's
        momentum e^{−h·B/m} is in (0, 1] for any damping.
        """
        if scheme not in SCHEMES:
            raise ValueError(f"Invalid scheme: {scheme!r} (choose one of {', '.join(SCHEMES)})")
        ratio = step_size * damping / inertia
        if scheme == "conformal":
            decay = damping_decay(damping, inertia, step_size)
            return {
                "lr": potential_gain * step_size**2 * decay / inertia,
                "momentum": decay,
                "weight_decay": weight_decay / potential_gain,
            }
        if ratio > 1.0:
            raise ValueError(
                f"Invalid step for heavy-ball momentum: h·B/m = {ratio:g} > 1 gives momentum "
                f"1 − h·B/m = {1.0 - ratio:g} < 0. Use scheme='conformal' (momentum "
                "e^{−h·B/m}, damping solved exactly), less damping or a smaller step."
            )
        return {
            "lr": potential_gain * step_size**2 / inertia,
            "momentum": 1.0 - ratio,
            "weight_decay": weight_decay / potential_gain,
        }


def _checked(settings: dict) -> dict:
    """An optimizer's settings, each checked with a message naming it."""
    step_size, scheme = settings["step_size"], settings["scheme"]
    if isinstance(step_size, bool) or not isinstance(step_size, int | float) or not step_size > 0:
        raise ValueError(f"Invalid step_size: {step_size!r} (must be > 0)")
    if scheme not in SCHEMES:
        raise ValueError(f"Invalid scheme: {scheme!r} (choose one of {', '.join(SCHEMES)})")
    gains = ("damping", "inertia", "potential_gain", "weight_decay")
    return {
        **settings,
        "step_size": float(step_size),
        **{name: check_gain_value(name, settings[name]) for name in gains},
    }
