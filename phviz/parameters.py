"""Where a module's trainable parameters live in the flat vector θ of the dynamics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector


class ParameterLayout:
    """Where each named parameter lives in the flat vector θ."""

    def __init__(self, model: torch.nn.Module):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("The model has no trainable parameters")
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.size = sum(self.numels)
        self.offsets = [0]
        for k in self.numels:
            self.offsets.append(self.offsets[-1] + k)
        # For functional_call: a module reached by two paths (one layer used twice)
        # would be swapped twice by its weight tying and restored wrongly, leaving plain
        # tensors in the model; untied, the one module is swapped once, as it should be.
        self.tie_weights = sum(1 for _ in model.named_modules(remove_duplicate=False)) == sum(
            1 for _ in model.modules()
        )

    def unflatten(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``theta`` shaped like the model's parameters, in order; a leading
        axis of members (rows of θ) stays in front."""
        lead = theta.shape[:-1]
        return [
            t.view((*lead, *s))
            for t, s in zip(theta.split(self.numels, dim=-1), self.shapes, strict=True)
        ]

    def slice(self, name: str) -> slice:
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i + 1])

    def expand(self, check, gain: str, mapping: Mapping, like: torch.Tensor, current):
        """A per-name (or per-module-prefix) mapping as one value per scalar parameter.

        Parameters the mapping does not name keep ``current`` (a float, or a tensor of
        one value per parameter): the run's gain in force, never an unnoticed 0 that
        would leave a layer undamped. ``check(gain, value, where)`` checks each value.
        """
        if isinstance(current, torch.Tensor):
            out = current.detach().to(device=like.device, dtype=like.dtype).clone()
        else:
            out = torch.full((self.size,), float(current), device=like.device, dtype=like.dtype)
        for key, value in mapping.items():
            hits = [n for n in self.names if n == key or n.startswith(f"{key}.")]
            if not hits:
                raise ValueError(
                    f"Invalid {gain}: no parameter is named {key!r}; "
                    f"names are {', '.join(self.names)}"
                )
            v = check(gain, value, where=f" for {key!r}")
            for n in hits:
                out[self.slice(n)] = v
        return out


class FlatParameters:
    """A module's trainable parameters and gradients as views into two flat buffers.

    ``backward(theta, closure)`` copies θ into the parameters, runs
    ``closure().backward()`` and leaves ∇L in ``grad``: the module runs exactly as
    written, at the cost of a plain training step (no ``functional_call`` bookkeeping,
    no gather of per-parameter gradients). The parameters keep the θ of the latest
    evaluation.
    """

    def __init__(self, model: torch.nn.Module):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.theta = parameters_to_vector(self.params).detach()
        self.grad = torch.zeros_like(self.theta)
        self.theta_views, self.grad_views = [], []
        offset = 0
        for p in self.params:
            n = p.numel()
            self.theta_views.append(self.theta[offset : offset + n].view_as(p))
            self.grad_views.append(self.grad[offset : offset + n].view_as(p))
            offset += n
        for p, view in zip(self.params, self.theta_views, strict=True):
            p.data = view
        self.pointers = [v.data_ptr() for v in self.theta_views]
        # on the CPU θ goes in and the gradient is cleared through NumPy views of the
        # buffers (a NumPy call on a vector this size costs a fraction of a torch one)
        cpu = self.theta.device.type == "cpu"
        self.arrays = (self.theta.numpy(), self.grad.numpy()) if cpu else None

    def backward(self, theta, closure) -> torch.Tensor:
        """L(θ), leaving ∇L(θ) in ``self.grad`` (overwritten by the next call).

        ``theta``: a tensor, or on the CPU a NumPy array."""
        self._bind(theta, clear=True)
        with torch.enable_grad():
            loss = closure()
            loss.backward()
        return loss.detach()

    def value(self, theta, closure) -> torch.Tensor:
        """L(θ) alone: the forward pass, no graph, no gradient."""
        self._bind(theta, clear=False)
        with torch.no_grad():
            return closure()

    def _bind(self, theta, clear: bool) -> None:
        """θ into the parameters' views (and the gradient views cleared)."""
        views = zip(self.params, self.theta_views, self.grad_views, self.pointers, strict=True)
        for p, view, g, pointer in views:
            if p.data_ptr() != pointer:  # someone rebound it (.data = ...): bind again
                with torch.no_grad():
                    view.copy_(p.data)
                p.data = view
            if p.grad is not g:  # zero_grad(set_to_none=True) drops the views
                p.grad = g
        if self.arrays is None:
            with torch.no_grad():
                self.theta.copy_(theta)
                if clear:
                    self.grad.zero_()
        else:
            if isinstance(theta, torch.Tensor):
                theta = theta.detach().numpy()
            np.copyto(self.arrays[0], theta)
            if clear:
                self.arrays[1].fill(0.0)
