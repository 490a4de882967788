"""How ∇L(θ) is computed on the batch held: one route per kind of model, chosen once
when a system is built (``choose_route``).

Every route gives the same numbers, to rounding; they differ in what they cost.
``python -m phviz.bench core`` times each against the general one on its own case.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .arrays import ArrayGradient
from .parameters import FlatParameters, ParameterLayout
from .tracing import DirectForward

# A phviz MLP whose evaluation has at most this many multiply-adds (parameters × batch
# points) steps in NumPy on the CPU: its time goes to calling operations on a few
# numbers, which NumPy does for a fraction of torch's cost; above it torch's kernels win.
ARRAY_WORK_THRESHOLD = 1_000_000


class Route:
    """Holds the batch; a subclass computes L and ∇L on it."""

    def __init__(self, model: torch.nn.Module, loss_fn, layout: ParameterLayout):
        self.model, self.loss_fn, self.layout = model, loss_fn, layout
        self.inputs = self.targets = None
        self.cpu = next(model.parameters()).device.type == "cpu"

    def hold(self, inputs: torch.Tensor, targets: torch.Tensor, arrays=None) -> None:
        """Take a batch (``arrays``: the same in ``array_batch``'s form, where the route
        has one and the caller made it)."""
        self.inputs, self.targets = inputs, targets

    @property
    def takes_arrays(self) -> bool:
        """Whether ``gradient_into`` works: NumPy arrays for θ, on the CPU."""
        return self.cpu


class Autograd(Route):
    """Any module: θ copied into its parameters and one backward pass of autograd."""

    def __init__(self, model: torch.nn.Module, loss_fn, layout: ParameterLayout):
        super().__init__(model, loss_fn, layout)
        self.flat = FlatParameters(model)

    @functools.cached_property
    def forward(self) -> DirectForward:
        """model(x), without nn.Module's search for hooks on every call where no hook is
        registered: a few per cent of a small network's step, so that the field costs
        about what a plain training step does (made on first use: it may trace)."""
        return DirectForward(self.model)

    def _closure(self) -> torch.Tensor:
        return self.loss_fn(self.forward(self.inputs), self.targets)

    def loss_and_gradient(self, theta: torch.Tensor, need_loss: bool = True):
        """L(θ) and ∇L(θ); the gradient is a buffer the next call overwrites."""
        return self.flat.backward(theta, self._closure), self.flat.grad

    def gradient_into(self, theta: np.ndarray, scale: float, out: np.ndarray) -> float:
        """``out`` ← scale·∇L(θ) for NumPy θ on the CPU; returns L(θ)."""
        loss = self.flat.backward(theta, self._closure)
        np.multiply(self.flat.arrays[1], scale, out=out)
        return float(loss)

    def value(self, theta: np.ndarray) -> float:
        """L(θ) for NumPy θ on the CPU, by the forward pass alone."""
        return float(self.flat.value(theta, self._closure))


class HandWritten(Route):
    """phviz's MLP with a phviz loss: its backward pass written out, no autograd graph."""

    def __init__(self, model, loss_fn, layout: ParameterLayout):
        super().__init__(model, loss_fn, layout)
        self.output_gradient = loss_fn.with_output_gradient

    def loss_and_gradient(self, theta: torch.Tensor, need_loss: bool = True):
        """L(θ) and ∇L(θ) for one θ, or per row for a batch of θ (members × parameters);
        L is None unless ``need_loss``."""
        loss, grads = self.model.functional_loss_and_gradient(
            self.layout.unflatten(theta),
            self.inputs,
            self.targets,
            self.output_gradient,
            need_loss,
        )
        lead = theta.shape[:-1]
        return loss, torch.cat([g.reshape(*lead, -1) for g in grads], dim=-1)

    def gradient_into(self, theta: np.ndarray, scale: float, out: np.ndarray) -> float:
        loss, grad = self.loss_and_gradient(torch.from_numpy(theta))
        np.multiply(grad.numpy(), scale, out=out)
        return float(loss)


class Arrays(Autograd):
    """phviz's MLPs on the CPU: the written-out backward pass in NumPy, buffers kept
    (``ArrayGradient``) for the batch held; autograd for a batch too large for it and
    for tensors."""

    def __init__(self, model, loss_fn, layout: ParameterLayout):
        super().__init__(model, loss_fn, layout)
        self.prepare, output_gradient = loss_fn.array_form
        dtype = next(model.parameters()).detach().numpy().dtype
        self.width, self.dtype = layout.shapes[-1][0], dtype
        self._make = lambda points: ArrayGradient(model, points, dtype, output_gradient)
        self.gradients: dict[int, ArrayGradient] = {}  # by batch size
        self.gradient = None

    def hold(self, inputs: torch.Tensor, targets: torch.Tensor, arrays=None) -> None:
        super().hold(inputs, targets)
        self.hold_arrays(*(arrays if arrays is not None else self.array_batch(inputs, targets)))

    def array_batch(self, inputs: torch.Tensor, targets: torch.Tensor):
        """A batch as ``hold_arrays`` takes it (labels become one-hot rows)."""
        prepared = self.prepare(targets.detach().numpy(), self.width, self.dtype)
        return inputs.detach().numpy(), prepared

    def hold_arrays(self, x: np.ndarray, targets: np.ndarray) -> None:
        """Hold a batch already in ``array_batch``'s form (no conversion). A batch with
        more than ``ARRAY_WORK_THRESHOLD`` multiply-adds takes torch's kernels instead."""
        self.gradient = None
        if len(x) * self.layout.size > ARRAY_WORK_THRESHOLD:
            return
        gradient = self.gradients.get(len(x))
        if gradient is None:
            gradient = self.gradients[len(x)] = self._make(len(x))
        gradient.hold(x, targets)
        self.gradient = gradient

    def gradient_into(self, theta: np.ndarray, scale: float, out: np.ndarray) -> float:
        if self.gradient is None:
            return super().gradient_into(theta, scale, out)
        self.gradient(theta, scale, out)
        return self.gradient.loss

    def value(self, theta: np.ndarray) -> float:
        if self.gradient is None:
            return super().value(theta)
        return self.gradient.value(theta)


def hand_writable(model: torch.nn.Module, loss_fn) -> bool:
    """Whether ``model`` and ``loss_fn`` have their backward pass written out: phviz's
    MLPs with a phviz loss, every parameter trained."""
    return (
        callable(getattr(model, "functional_loss_and_gradient", None))
        and hasattr(loss_fn, "with_output_gradient")
        and all(p.requires_grad for p in model.parameters())
    )


def choose_route(model: torch.nn.Module, loss_fn, layout: ParameterLayout):
    """The cheapest route for ``model`` and ``loss_fn``: for phviz's MLPs with a phviz
    loss their written-out backward pass (NumPy on the CPU, torch on a GPU), autograd
    for any other module or loss, and for an MLP's batches too large for NumPy (where
    the written-out pass in torch gains nothing on the CPU)."""
    if not hand_writable(model, loss_fn):
        return Autograd(model, loss_fn, layout)
    cpu = next(model.parameters()).device.type == "cpu"
    if cpu and hasattr(loss_fn, "array_form"):
        return Arrays(model, loss_fn, layout)
    return HandWritten(model, loss_fn, layout)
