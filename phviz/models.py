"""Architectures: the paper's linear model and MLPs built from a short spec."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

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
        ``need_loss`` is false) and ∂L/∂outputs. The backward pass uses the kernels
        autograd itself calls (``mm``, ``sum`` and the activations' own backward
        functions), so the gradient equals autograd's. Parameters with a leading axis of
        members (an ensemble: W of shape members × out × in) give one L and one gradient
        per member, by batched matrix products.
        """
        n_layers = len(tensors) // 2
        members = tensors[0].dim() == 3
        activations, pre = [x], []
        h = x
        for i in range(n_layers):
            w, b = tensors[2 * i], tensors[2 * i + 1]
            if members:
                h = h.expand(len(w), *h.shape) if h.dim() == 2 else h
                z = torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))
            else:
                z = torch.addmm(b, h, w.t())
            if i < n_layers - 1:
                h = self._act(z)
                pre.append(z)
                activations.append(h)
            else:
                h = z
        loss, g = loss_and_output_gradient(h, targets, need_loss)
        grads: list = [None] * len(tensors)
        for i in reversed(range(n_layers)):
            a, w = activations[i], tensors[2 * i]
            if members:
                a = a.expand(len(w), *a.shape) if a.dim() == 2 else a
                grads[2 * i] = torch.bmm(g.transpose(-1, -2), a)
                grads[2 * i + 1] = g.sum(-2)
            else:
                grads[2 * i] = g.t().mm(a)
                grads[2 * i + 1] = g.sum(0)
            if i > 0:
                back = torch.bmm(g, w) if members else g.mm(w)
                g = self._act_backward(back, pre[i - 1], activations[i])
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
