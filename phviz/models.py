"""Architectures: the paper's linear model and MLPs built from a short spec."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import _array_mse_and_gradient

_SEEDING = threading.Lock()

ACTIVATIONS = ("softplus", "tanh", "relu", "sigmoid")


def parse_hidden(spec) -> tuple[int, ...]:
    """Hidden widths from ``"16,16"``, ``[16, 16]`` or ``16``; anything else is an error."""
    if isinstance(spec, str):
        parts = [s.strip() for s in spec.replace(" ", ",").split(",") if s.strip()]
        if not parts:
            raise ValueError(
                "Invalid hidden widths: '' (give at least one width such as '16,16', "
                "or choose the linear model)"
            )
        try:
            widths = tuple(int(s) for s in parts)
        except ValueError:
            raise ValueError(
                f"Invalid hidden widths: {spec!r} (expected whole numbers separated by commas)"
            ) from None
    elif isinstance(spec, int) and not isinstance(spec, bool):
        widths = (spec,)
    elif isinstance(spec, Sequence):
        widths = tuple(spec)
        if not widths:
            raise ValueError(
                "Invalid hidden widths: [] (give at least one width, or choose the linear model)"
            )
    else:
        raise TypeError(f"Invalid hidden widths: {spec!r}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
            raise ValueError(f"Invalid hidden width: {w!r} (each width must be a whole number > 0)")
    return widths


class MLP(nn.Sequential):
    """Linear layers with one activation between them (none after the last).

    ``functional_forward`` evaluates the same network from given parameter tensors,
    which the port-Hamiltonian system uses instead of ``functional_call`` to save its
    per-call overhead on small networks; ``functional_loss_and_gradient`` adds the
    backward pass written out by hand (the chain rule through Linear and the
    activation), which costs a fraction of autograd's graph on such networks.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "softplus",
        softplus_beta: float = 10.0,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Invalid activation: {activation!r} (choose one of {', '.join(ACTIVATIONS)})"
            )
        if softplus_beta <= 0:
            raise ValueError(f"Invalid softplus_beta: {softplus_beta!r} (must be > 0)")
        layers: list[nn.Module] = []
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(m, n))
            if i < len(sizes) - 2:
                layers.append(_activation_module(activation, softplus_beta))
        super().__init__(*layers)
        self.sizes = tuple(sizes)
        self.activation = activation
        self.softplus_beta = softplus_beta

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        if self.activation == "softplus":
            return F.softplus(h, beta=self.softplus_beta)
        return getattr(torch, self.activation)(h)

    def functional_forward(self, tensors: Sequence[torch.Tensor], x: torch.Tensor):
        """Output for parameters ``tensors`` = [W1, b1, W2, b2, ...] (module order)."""
        n_layers = len(tensors) // 2
        h = x
        for i in range(n_layers):
            h = F.linear(h, tensors[2 * i], tensors[2 * i + 1])
            if i < n_layers - 1:
                h = self._act(h)
        return h

    def functional_loss_and_gradient(
        self,
        tensors: Sequence[torch.Tensor],
        x: torch.Tensor,
        targets,
        loss_and_output_gradient,
        need_loss: bool = True,
    ):
        """L and [∂L/∂W1, ∂L/∂b1, ...] for parameters ``tensors``, without autograd.

        ``loss_and_output_gradient(outputs, targets, need_loss)`` returns L (None when
        ``need_loss`` is false) and ∂L/∂outputs. The
        backward pass uses the kernels autograd itself calls (``mm``, ``sum`` and the
        activations' own backward functions), so the gradient equals autograd's.
        """
        n_layers = len(tensors) // 2
        activations, pre = [x], []
        h = x
        for i in range(n_layers):
            z = torch.addmm(tensors[2 * i + 1], h, tensors[2 * i].t())
            if i < n_layers - 1:
                h = self._act(z)
                pre.append(z)
                activations.append(h)
            else:
                h = z
        loss, g = loss_and_output_gradient(h, targets, need_loss)
        grads: list = [None] * len(tensors)
        for i in reversed(range(n_layers)):
            grads[2 * i] = g.t().mm(activations[i])
            grads[2 * i + 1] = g.sum(0)
            if i > 0:
                g = self._act_backward(g.mm(tensors[2 * i]), pre[i - 1], activations[i])
        return loss, grads

    def _act_backward(self, grad: torch.Tensor, z: torch.Tensor, out: torch.Tensor):
        """∂L/∂z from ∂L/∂act(z): autograd's own backward kernels, so the same numbers."""
        aten = torch.ops.aten
        if self.activation == "softplus":
            return aten.softplus_backward(grad, z, self.softplus_beta, 20.0)
        if self.activation == "tanh":
            return aten.tanh_backward(grad, out)
        if self.activation == "sigmoid":
            return aten.sigmoid_backward(grad, out)
        return aten.threshold_backward(grad, out, 0)

    def array_loss_and_gradient(self, arrays, x: np.ndarray, targets, loss_and_output_gradient):
        """``functional_loss_and_gradient`` in NumPy, for small networks on the CPU.

        A NumPy operation on a few numbers costs a fraction of a torch one, which is
        what an online run of a small model spends its time on. The formulas are
        torch's own (softplus' threshold included): the same numbers to rounding.
        """
        n_layers = len(arrays) // 2
        activations, pre = [x], []
        h = x
        for i in range(n_layers):
            z = h @ arrays[2 * i].T + arrays[2 * i + 1]
            if i < n_layers - 1:
                h = _array_activation(self.activation, z, self.softplus_beta)
                pre.append(z)
                activations.append(h)
            else:
                h = z
        loss, g = loss_and_output_gradient(h, targets)
        grads: list = [None] * len(arrays)
        for i in reversed(range(n_layers)):
            grads[2 * i] = g.T @ activations[i]
            grads[2 * i + 1] = g.sum(0)
            if i > 0:
                back = g @ arrays[2 * i]
                g = _array_activation_backward(
                    self.activation, back, pre[i - 1], activations[i], self.softplus_beta
                )
        return loss, grads

    def array_gradient(self, x: np.ndarray, targets: np.ndarray, output_gradient):
        """``ArrayGradient``: the gradient of ``array_loss_and_gradient`` on one batch,
        with every buffer allocated once (for a vector field called thousands of times)."""
        return ArrayGradient(self, x, targets, output_gradient)


class ArrayGradient:
    """s·∇L(θ) of an ``MLP`` on one batch, in NumPy, into a given flat array.

    A small network's evaluation is a few dozen NumPy calls on arrays of a few thousand
    numbers, and each call and each pass over such an array counts, so no array is
    allocated per call and the passes are few:

    - Activations are stored one row per unit (units × points), and each layer's input
      carries an extra row of constants: [W | b] then acts on it in one matrix
      product, bias included, and the gradient of [W | b] is one product too. One
      gather takes every [W | b] out of θ, one scatter puts their gradients back.
    - Softplus layers keep a = βz and u = β·softplus(z) = log1p(e^a) instead of z and
      softplus(z): β moves from every (unit, point) entry onto the inputs and the
      constant rows (once), and the slope σ(a) = e^a/(1 + e^a) reuses e^a.

    The formulas are ``array_loss_and_gradient``'s (torch's own, softplus' threshold
    included), so the numbers agree to rounding.
    """

    def __init__(self, model: MLP, x: np.ndarray, targets: np.ndarray, output_gradient):
        self.activation = model.activation
        sizes, dtype, n = model.sizes, x.dtype, len(x)
        gain = float(model.softplus_beta) if model.activation == "softplus" else 1.0
        if len(sizes) == 2:  # no hidden layer: nothing to scale
            gain = 1.0
        self.gain = gain
        self.output_gradient = output_gradient
        # The output layer gives γz. The mean squared error's gradient is
        # 2/size·(z − targets): γz − γ·targets is one subtraction, and γ and 2/size join
        # the final scaling. Any other loss gets z, as points × units in Fortran order
        # (a transposed view), and targets in that order for contiguous arithmetic.
        self.residual = output_gradient is _array_mse_and_gradient
        if self.residual:
            self.targets = np.ascontiguousarray(targets.T * dtype.type(gain))
            self.factor = 2.0 / (targets.size * gain * gain)
        else:
            self.targets = np.asfortranarray(targets)
            self.factor = 1.0 / gain
        # each layer's inputs with their row of constants (γ, so that [W | b] gives γz)
        self.inputs = [np.empty((m + 1, n), dtype) for m in sizes[:-1]]
        for h in self.inputs:
            h[-1] = gain
        np.multiply(x.T, gain, out=self.inputs[0][:-1])
        self.z = [np.empty((k, n), dtype) for k in sizes[1:]]
        self.slope = [np.empty((k, n), dtype) for k in sizes[1:-1]]
        self.back = [np.empty((m + 1, n), dtype) for m in sizes[1:-1]]
        self.scratch = np.empty((max(sizes[1:]), n), dtype)
        # [W | b] of every layer in one array, and their gradients in another; θ stores
        # W (row by row) then b, layer by layer: ``order`` lists θ's index of each entry
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        self.weights, self.grads, order, offset = [], [], [], 0
        flat = np.empty(sum(k * (m + 1) for m, k in pairs), dtype)
        flat_grad = np.empty_like(flat)
        for m, k in pairs:
            w = offset + np.arange(k * m).reshape(k, m)
            b = offset + k * m + np.arange(k)[:, None]
            order.append(np.hstack([w, b]).ravel())
            end = offset + k * (m + 1)  # [W | b] has as many entries as W and b
            self.weights.append(flat[offset:end].reshape(k, m + 1))
            self.grads.append(flat_grad[offset:end].reshape(k, m + 1))
            offset = end
        self.flat_weights, self.flat_grads = flat, flat_grad
        self.order = np.concatenate(order)
        self.scatter = np.argsort(self.order)
        self.gathered = np.empty_like(flat)
        # Softplus is linear where a = βz > 20, as torch's. In float32, log1p(e^a) rounds
        # to a itself there and σ(a) to 1: the formulas are torch's linear piece until
        # e^a overflows, and that shows in the gradient (∞ or NaN), which is then taken
        # again with the masks. (Outside a solve, which ignores overflow, NumPy warns of
        # it first.) In float64 the masks are taken wherever a passes 20.
        self.threshold = 88.0 if dtype == np.float32 else 20.0
        self.checked = not (dtype == np.float32 and self.activation == "softplus")

    def __call__(self, theta: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
        """``out`` ← scale·∇L(θ) (θ and ``out`` flat, in the model's parameter order)."""
        self._gradient(theta, scale, out, self.checked)
        if not self.checked and not math.isfinite(np.add.reduce(out)):
            self._gradient(theta, scale, out, True)  # e^βz overflowed: take the masks
        return out

    def _gradient(self, theta, scale, out, checked: bool) -> None:
        # the indices are in range: "wrap" spares the copy that "raise" makes of ``out``
        theta.take(self.order, out=self.flat_weights, mode="wrap")
        weights, inputs, last = self.weights, self.inputs, len(self.weights) - 1
        for i in range(last):
            z = self.z[i]
            np.dot(weights[i], inputs[i], out=z)
            self._activate(z, inputs[i + 1][:-1], self.slope[i], checked)
        z = self.z[last]
        np.dot(weights[last], inputs[last], out=z)
        if self.residual:
            g = np.subtract(z, self.targets, out=z)
        else:
            if self.gain != 1.0:
                z *= 1.0 / self.gain
            g = self.output_gradient(z.T, self.targets, False)[1].T
        for i in range(last, -1, -1):
            np.dot(g, inputs[i].T, out=self.grads[i])
            if i > 0:
                back = self.back[i - 1]
                np.dot(weights[i].T, g, out=back)
                g = self.slope[i - 1]
                np.multiply(back[:-1], g, out=g)
        # the layers' gradients came out γ times too large (their inputs are γ·h), and
        # for the mean squared error without its factor 2/(size·γ): ``factor`` undoes both
        self.flat_grads.take(self.scatter, out=self.gathered, mode="wrap")
        np.multiply(self.gathered, scale * self.factor, out=out)

    def _activate(self, z: np.ndarray, h: np.ndarray, slope: np.ndarray, checked: bool) -> None:
        """h ← act(z) and slope ← act′(z); for softplus z is a = βz, h is
        β·softplus(z) = log1p(e^a) and slope σ(a), ``checked``: masked where a passes
        the threshold."""
        name, e = self.activation, self.scratch[: len(z)]
        if name == "softplus":
            limit = self.threshold
            above = checked and float(np.maximum.reduce(z, axis=None)) > limit
            if above:
                np.minimum(z, limit, out=e)
                np.exp(e, out=e)
            else:
                np.exp(z, out=e)
            np.log1p(e, out=h)
            np.add(e, 1.0, out=slope)
            np.divide(e, slope, out=slope)  # σ(a), as softplus_backward
            if above:
                linear = z > limit
                np.copyto(h, z, where=linear)
                np.copyto(slope, 1.0, where=linear)
        elif name == "tanh":
            np.tanh(z, out=h)
            np.multiply(h, h, out=slope)
            np.subtract(1.0, slope, out=slope)
        elif name == "sigmoid":
            np.negative(z, out=e)
            np.exp(e, out=e)
            e += 1.0
            np.reciprocal(e, out=h)
            np.subtract(1.0, h, out=slope)
            slope *= h
        else:
            np.maximum(z, 0.0, out=h)
            np.greater(h, 0.0, out=slope)


def _array_activation(name: str, z: np.ndarray, beta: float) -> np.ndarray:
    if name == "softplus":  # as torch: linear above a threshold of 20
        bz = beta * z
        return np.where(bz > 20.0, z, np.log1p(np.exp(np.minimum(bz, 20.0))) / beta)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return np.maximum(z, 0.0)


def _array_activation_backward(name, grad, z, out, beta):
    if name == "softplus":
        bz = beta * z
        e = np.exp(np.minimum(bz, 20.0))
        return np.where(bz > 20.0, grad, grad * e / (e + 1.0))
    if name == "tanh":
        return grad * (1.0 - out * out)
    if name == "sigmoid":
        return grad * (1.0 - out) * out
    return np.where(out > 0.0, grad, 0.0)


def _activation_module(name: str, beta: float) -> nn.Module:
    if name == "softplus":
        return nn.Softplus(beta=beta)
    return {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[name]()


def build_model(
    input_dim: int,
    output_dim: int,
    *,
    architecture: str = "mlp",
    hidden="16,16",
    activation: str = "softplus",
    softplus_beta: float = 10.0,
    seed: int | None = 0,
    device="cpu",
    dtype=torch.float32,
) -> MLP:
    """A seeded model: ``architecture="linear"`` (one layer) or ``"mlp"`` with ``hidden``."""
    if architecture == "linear":
        sizes = (input_dim, output_dim)
    elif architecture == "mlp":
        sizes = (input_dim, *parse_hidden(hidden), output_dim)
    else:
        raise ValueError(f"Invalid architecture: {architecture!r} (choose 'linear' or 'mlp')")
    # Layers draw their initial weights from torch's one global generator: builds on
    # other threads (a server's worker pool, Dask threads) must not interleave with it.
    with _SEEDING:
        generator_state = torch.random.get_rng_state()
        try:
            if seed is not None:
                torch.manual_seed(seed)
            model = MLP(sizes, activation, softplus_beta)
        finally:
            torch.random.set_rng_state(generator_state)
    return model.to(device=device, dtype=dtype)
