"""Many members of one run that differ only in their gains, integrated as one ensemble.

A gain map's cells are runs of the same ``Trainer``: the same data, batches, initial
weights and momenta, only the gains differ. Stacked as rows of one θ (members ×
parameters), with each gain a column, every step evaluates all members at once: phviz's
MLPs by their written-out backward pass over stacks of matrices (in NumPy on the CPU,
as a single run takes it, in torch elsewhere), any other module by ``torch.func.vmap``
over its forward pass and one backward pass. A solver with ``ensemble`` set integrates
an ``Ensemble`` as it integrates one system.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import vmap

from .arrays import ArrayGradient
from .gains import GAINS
from .routes import HandWritten, hand_writable


class Ensemble:
    """The members of ``trainer``'s run with gains ``gains`` (name → one value per
    member; the others are the run's own), in the interface the solvers integrate.
    ``hand_written``: whether phviz's MLP takes its written-out backward pass (default:
    whenever it has one), else autograd under ``vmap``.

    A member whose state becomes NaN or infinite is frozen at its last good state
    (``freeze_diverged``) and flagged in ``alive``; the others go on untouched.
    """

    def __init__(self, trainer, gains: dict[str, list[float]], *, hand_written=None):
        system = trainer.system
        self.system, self.layout = system, system.layout
        self.count = count = len(next(iter(gains.values())))
        like = self._like_tensor = trainer.initial_theta
        if hand_written is None:
            hand_written = hand_writable(system.model, system.loss_fn)
        self.hand_written = bool(hand_written)
        loss_fn = system.loss_fn
        self.takes_arrays = (
            self.hand_written and like.device.type == "cpu" and hasattr(loss_fn, "array_form")
        )
        columns = {
            name: torch.tensor(gains.get(name, [getattr(trainer.config, name)] * count)).to(like)[
                :, None
            ]
            for name in GAINS
        }
        self.columns = {k: v.numpy() for k, v in columns.items()} if self.takes_arrays else columns
        self.alive = np.ones(count, dtype=bool)
        self.moving = self._like(np.ones((count, 1)), like)
        self.members = self  # what the solvers look for: rows of θ are members
        if self.takes_arrays:
            self._prepare, self._output_gradient = loss_fn.array_form
            self._width, self._dtype = system.layout.shapes[-1][0], like.numpy().dtype
            self._gradients: dict[int, ArrayGradient] = {}
        elif self.hand_written:  # a route of their own: the run's keeps its batch
            self._route = HandWritten(system.model, loss_fn, system.layout)
        else:
            self._forward = vmap(system.forward, in_dims=(0, None))
            self._loss = vmap(loss_fn, in_dims=(0, None))
        self.inputs = self.targets = None

    def _like(self, array: np.ndarray, like: torch.Tensor):
        if self.takes_arrays:
            return array.astype(like.numpy().dtype)
        return torch.as_tensor(array).to(like)

    def start(self, theta: torch.Tensor, p: torch.Tensor):
        """Every member at the run's initial state (θ, p): rows of an array or tensor."""
        theta, p = theta.expand(self.count, -1).clone(), p.expand(self.count, -1).clone()
        return (theta.numpy(), p.numpy()) if self.takes_arrays else (theta, p)

    def set_batch(self, inputs: torch.Tensor, targets: torch.Tensor, **_) -> None:
        self.inputs, self.targets = inputs, targets
        if self.takes_arrays:
            self._gradient = self._hold(inputs, targets)
        elif self.hand_written:
            self._route.hold(inputs, targets)

    def _hold(self, inputs, targets) -> ArrayGradient:
        gradient = self._gradients.get(len(inputs))
        if gradient is None:
            model = self.system.model
            gradient = ArrayGradient(
                model, len(inputs), self._dtype, self._output_gradient, members=self.count
            )
            self._gradients[len(inputs)] = gradient
        x = inputs.detach().numpy()
        gradient.hold(x, self._prepare(targets.detach().numpy(), self._width, self._dtype))
        return gradient

    def gains(self, arrays: bool = False) -> dict:
        return self.columns

    def port_force(self, t, theta, p):
        return None  # members have no port

    def losses(self, theta):
        """L(θ_k) of every member on the batch held."""
        if self.takes_arrays:
            return self._gradient.value(theta)
        with torch.no_grad():
            if self.hand_written:
                return self._route.loss_and_gradient(theta)[0]
            return self._loss(self._forward(theta, self.inputs), self.targets)

    def losses_on(self, inputs, targets, theta):
        """Every member's loss on other data (the training set); the batch stays held."""
        held = self.inputs, self.targets
        self.set_batch(inputs, targets)
        try:
            return self.losses(theta)
        finally:
            self.set_batch(*held)

    def array_force(self, theta: np.ndarray):
        """Every member's L and −(a∇L + cθ) (zero for frozen members), in NumPy."""
        c = self.columns
        out = np.empty_like(theta)
        self._gradient(theta, -c["potential_gain"], out)
        out -= c["weight_decay"] * theta
        out *= self.moving
        return self._gradient.loss, out

    def force(self, theta):
        """Every member's L and −(a∇L + cθ) (zero for frozen members)."""
        if self.takes_arrays:
            return self.array_force(theta)
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

    def potential(self, theta, losses=None):
        """a·L + (c/2)‖θ‖² of every member."""
        losses = self.losses(theta) if losses is None else losses
        c = self.columns
        decay = 0.5 * (c["weight_decay"] * theta * theta).sum(-1)
        return c["potential_gain"][:, 0] * losses + decay

    def kinetic(self, p):
        return 0.5 * (p * p / self.columns["inertia"]).sum(-1)

    def freeze_diverged(self, theta, p, start, force):
        """Members whose state and energy are still finite after an interval go on; the
        others go back to their state at its start, at rest, and stop moving."""
        energy = self.potential(theta, force.loss_at(theta)) + self.kinetic(p)
        finite = _finite(energy) & _finite(theta).all(-1) & _finite(p).all(-1)
        still = self.alive & np.asarray(finite)
        if not still.all():
            keep = still[:, None]
            if self.takes_arrays:
                theta = np.where(keep, theta, start[0])
                p = np.where(keep, p, 0.0).astype(theta.dtype)
            else:
                keep = torch.as_tensor(keep, device=theta.device)
                theta = torch.where(keep, theta, start[0])
                p = torch.where(keep, p, torch.zeros_like(p))
            force.forget()
        self.alive = still
        self.moving = self._like(still[:, None].astype(float), self._like_tensor)
        return theta, p


def _finite(x) -> np.ndarray:
    """Elementwise finiteness of a tensor or an array, as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return torch.isfinite(x).cpu().numpy()
    return np.isfinite(x)
