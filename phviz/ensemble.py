"""Many members of one run that differ only in their gains, integrated as one ensemble.

A gain map's cells are runs of the same ``Trainer``: the same data, batches, initial
weights and momenta, only the gains differ. Stacked as rows of one θ (members ×
parameters), with each gain a column, every step evaluates all members at once: phviz's
MLPs by their written-out backward pass in batched matrix products, any other module by
``torch.func.vmap`` over its forward pass and one backward pass. A solver with
``ensemble`` set integrates an ``Ensemble`` as it integrates one system.
"""

from __future__ import annotations

import torch
from torch.func import vmap

from .gains import GAINS
from .routes import HandWritten


class Ensemble:
    """The members of ``trainer``'s run with gains ``gains`` (name → one value per
    member; the others are the run's own), in the interface the solvers integrate.

    A member whose state becomes NaN or infinite is frozen at its last finite state
    (``freeze_diverged``) and flagged in ``alive``; the others go on untouched.
    """

    def __init__(self, trainer, gains: dict[str, list[float]], *, hand_written=None):
        system = trainer.system
        self.system, self.layout = system, system.layout
        count = len(next(iter(gains.values())))
        like = trainer.initial_theta
        self.columns = {
            name: torch.tensor(
                gains.get(name, [getattr(trainer.config, name)] * count), dtype=like.dtype
            ).to(like.device)[:, None]
            for name in GAINS
        }
        self.count = count
        self.alive = torch.ones(count, dtype=torch.bool, device=like.device)
        self.moving = torch.ones((count, 1), dtype=like.dtype, device=like.device)
        self.members = self  # what the solvers look for: rows of θ are members
        if hand_written is None:
            hand_written = isinstance(system.route, HandWritten)
        self.hand_written = bool(hand_written)
        if self.hand_written:  # a route of their own: the run's keeps its batch
            self._route = HandWritten(system.model, system.loss_fn, system.layout)
        else:
            self._forward = vmap(system.forward, in_dims=(0, None))
            self._loss = vmap(system.loss_fn, in_dims=(0, None))
        self.inputs = self.targets = None
        self.takes_arrays = False

    def start(self, theta: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member at the run's initial state (θ, p)."""
        return theta.expand(self.count, -1).clone(), p.expand(self.count, -1).clone()

    def set_batch(self, inputs: torch.Tensor, targets: torch.Tensor, **_) -> None:
        self.inputs, self.targets = inputs, targets
        if self.hand_written:
            self._route.hold(inputs, targets)

    def gains(self, arrays: bool = False) -> dict:
        return self.columns

    def port_force(self, t, theta, p):
        return None  # members have no port

    def losses(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ_k) of every member on the batch held."""
        with torch.no_grad():
            if self.hand_written:
                return self._route.loss_and_gradient(theta)[0]
            return self._loss(self._forward(theta, self.inputs), self.targets)

    def losses_on(self, inputs, targets, theta: torch.Tensor) -> torch.Tensor:
        """Every member's loss on other data (the training set); the batch stays held."""
        held = self.inputs, self.targets
        self.set_batch(inputs, targets)
        try:
            return self.losses(theta)
        finally:
            self.set_batch(*held)

    def force(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's L and −(a∇L + cθ) (zero for frozen members)."""
        if self.hand_written:
            losses, gradient = self._route.loss_and_gradient(theta)
        else:
            with torch.enable_grad():
                leaf = theta.detach().requires_grad_(True)
                losses = self._loss(self._forward(leaf, self.inputs), self.targets)
                # the members are independent: the gradient of the sum is each one's own
                (gradient,) = torch.autograd.grad(losses.sum(), leaf)
            losses = losses.detach()
        c = self.columns
        force = (c["potential_gain"] * gradient + c["weight_decay"] * theta).mul_(-self.moving)
        return losses, force

    def potential(self, theta: torch.Tensor, losses: torch.Tensor | None = None):
        """a·L + (c/2)‖θ‖² of every member."""
        losses = self.losses(theta) if losses is None else losses
        c = self.columns
        return c["potential_gain"][:, 0] * losses + 0.5 * (c["weight_decay"] * theta * theta).sum(
            -1
        )

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (p * p / self.columns["inertia"]).sum(-1)

    def freeze_diverged(self, theta, p, start, force) -> tuple[torch.Tensor, torch.Tensor]:
        """Members whose state and energy are still finite after an interval go on; the
        others go back to their state at its start, at rest, and stop moving."""
        energy = self.potential(theta, force.loss_at(theta)) + self.kinetic(p)
        finite = torch.isfinite(theta).all(-1) & torch.isfinite(p).all(-1) & torch.isfinite(energy)
        still = self.alive & finite
        if not bool(still.all()):
            keep = still[:, None]
            theta = torch.where(keep, theta, start[0])
            p = torch.where(keep, p, torch.zeros_like(p))
            force.forget()
        self.alive = still
        self.moving = still[:, None].to(theta.dtype)
        return theta, p
