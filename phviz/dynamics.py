"""The port-Hamiltonian vector field of a network's training.

State ξ = [θ; p]: θ are the parameters of a ``torch.nn.Module`` flattened into one
vector, p their momenta. With a loss L over the current batch,

    H(θ, p) = a·L(θ) + (c/2)·θᵀθ + ½·pᵀM⁻¹p
    θ̇ = M⁻¹p
    ṗ = −a∇L(θ) − cθ − B M⁻¹p + u

so that Ḣ = −vᵀBv + vᵀu with v = M⁻¹p. This module is the one home of these
equations: the optimizer, the trainer and the views call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from .tracing import DirectForward

Gain = float | Mapping[str, float] | torch.Tensor
Port = torch.Tensor | Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None

# name → (lower bound, whether the bound itself is allowed, what the bound means)
_GAIN_RULES = {
    "damping": (0.0, True, ">= 0"),
    "inertia": (0.0, False, "> 0"),
    "potential_gain": (0.0, False, "> 0"),
    "weight_decay": (0.0, True, ">= 0"),
}


class Energy(NamedTuple):
    """Kinetic, potential and total energy (the Hamiltonian) of one state."""

    kinetic: torch.Tensor
    potential: torch.Tensor
    total: torch.Tensor


def check_gain_value(name: str, value, where: str = "") -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming the gain and value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}{where}: {value!r} (expected a number)")
    value = float(value)
    bound, inclusive, meaning = _GAIN_RULES[name]
    if not math.isfinite(value) or value < bound or (value == bound and not inclusive):
        raise ValueError(f"Invalid {name}{where}: {value!r} (must be finite and {meaning})")
    return value


def resolve_gain(name: str, value: Gain, layout: ParameterLayout, like: torch.Tensor, current=None):
    """A gain as a float (scalar) or as a tensor with one entry per scalar parameter.

    ``value`` is a number, a mapping from parameter name (or module prefix such as
    ``"0"`` for ``"0.weight"`` and ``"0.bias"``) to number, or a 1-D tensor with
    ``layout.size`` entries. Parameters a mapping does not name keep ``current``, the
    gain in force (the run's scalar gain; a float or a per-parameter tensor).
    """
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return check_gain_value(name, value.item())
        if value.dim() != 1 or value.numel() != layout.size:
            raise ValueError(
                f"Invalid {name}: a tensor gain needs shape ({layout.size},), "
                f"one entry per scalar parameter, got {tuple(value.shape)}"
            )
        bound, inclusive, meaning = _GAIN_RULES[name]
        bad = ~torch.isfinite(value) | (value < bound if inclusive else value <= bound)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(
                f"Invalid {name} at entry {i}: {value[i].item()!r} (must be finite and {meaning})"
            )
        return value.detach().to(device=like.device, dtype=like.dtype)
    if isinstance(value, Mapping):
        return layout.expand(name, value, like, current)
    return check_gain_value(name, value)


def potential_energy(loss, theta: torch.Tensor, potential_gain: float, weight_decay):
    """a·L + (c/2)·θᵀθ, summed over θ's last axis (one θ, or one row per θ).

    ``loss`` is L(θ) (one value per row); ``weight_decay`` c is a float or one value
    per scalar parameter. Without weight decay the θ term, a pass over every row, is skipped.
    """
    if not isinstance(weight_decay, torch.Tensor) and weight_decay == 0.0:
        return potential_gain * loss
    return potential_gain * loss + 0.5 * (weight_decay * theta * theta).sum(-1)


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
        """Views of ``theta`` shaped like the model's parameters, in order."""
        return [t.view(s) for t, s in zip(theta.split(self.numels), self.shapes, strict=True)]

    def slice(self, name: str) -> slice:
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i + 1])

    def expand(
        self, gain: str, mapping: Mapping[str, float], like: torch.Tensor, current=None
    ) -> torch.Tensor:
        """A per-name (or per-module-prefix) mapping as one value per scalar parameter.

        Parameters the mapping does not name keep ``current`` (a float, or a tensor of
        one value per parameter): the run's scalar gain, never an unnoticed 0 that
        would leave a layer undamped. Without ``current``: 1 for inertia and potential
        gain, 0 for weight decay, 1 for damping (the system's defaults).
        """
        if current is None:
            current = 0.0 if gain == "weight_decay" else 1.0
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
            v = check_gain_value(gain, value, where=f" for {key!r}")
            for n in hits:
                out[self.slice(n)] = v
        return out


class FlatParameters:
    """A module's trainable parameters and gradients as views into two flat buffers.

    ``loss_and_gradient(theta, closure)`` copies θ into the parameters, runs
    ``closure().backward()`` and returns the loss and a copy of the flat gradient: the
    module runs exactly as written, at the cost of a plain training step (no
    ``functional_call`` bookkeeping, no gather of per-parameter gradients). The
    parameters keep the θ of the latest evaluation (``write_to_model`` sets them).
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

    def loss_and_gradient(self, theta: torch.Tensor, closure):
        loss = self.backward(theta, closure)
        return loss, self.grad.clone()

    def backward(self, theta, closure, *, clear: bool = True) -> torch.Tensor:
        """L(θ), leaving ∇L(θ) in ``self.grad`` (overwritten by the next call).

        ``theta``: a tensor, or on the CPU a NumPy array. The gradients accumulate
        into the views, cleared first (cheaper than gathering fresh ones); with
        ``clear=False`` ∇L(θ) is added to what ``self.grad`` holds."""
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
        with torch.enable_grad():
            loss = closure()
            loss.backward()
        return loss.detach()


class PortHamiltonianSystem:
    """The vector field ξ̇ = (J − R)∇H + G·u of a model's training.

    ``system(t, xi)`` returns dξ/dt, so ``torchdiffeq.odeint(system, xi0, ts)``
    integrates the equations in the module docstring exactly as written.

    Any ``nn.Module`` runs as it is: its trainable parameters (and their gradients)
    become views into one flat buffer, so ∇L(θ) is "copy θ in, forward, backward, read
    the flat gradient", the cost of a plain training step. The module's parameters
    therefore hold the θ of the latest gradient evaluation (``write_to_model(xi)`` sets
    them to a chosen state). phviz's own MLPs with phviz's losses skip autograd
    altogether: the model's ``functional_loss_and_gradient`` writes the backward pass
    out (autograd's own kernels, the same numbers), and the module is left untouched.
    On the CPU the field's vector arithmetic runs in NumPy on the tensors' memory, and
    phviz's MLP takes its gradient in NumPy too (``MLP.array_gradient``): for networks
    this small a call costs more than its arithmetic, and NumPy's calls cost less.
    Outputs without gradient
    (energies, records) are evaluated functionally from θ; a model that offers
    ``functional_forward(tensors, x)`` (phviz's own MLPs do) skips
    ``torch.func.functional_call``'s per-call bookkeeping.

    ``fast=False`` runs any model, phviz's own included, the general way: autograd for
    ∇L and ``functional_call`` for the outputs (a reference for the fast paths).

    Gradients are taken with respect to θ only: the solve itself is not differentiated.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        damping: Gain = 1.0,
        inertia: Gain = 1.0,
        potential_gain: float = 1.0,
        weight_decay: Gain = 0.0,
        port: Port = None,
        fast: bool = True,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        self.layout = ParameterLayout(model)
        first = next(p for p in model.parameters() if p.requires_grad)
        self.device, self.dtype = first.device, first.dtype
        self._like = first.detach()
        self._buffers = dict(model.named_buffers())
        self._fast = (
            bool(fast)
            and callable(getattr(model, "functional_forward", None))
            and all(p.requires_grad for p in model.parameters())
        )
        self._flat = FlatParameters(model)
        self._forward = DirectForward(model)
        # a model with its own backward pass and a loss with its closed-form output
        # gradient: ∇L(θ) without autograd's graph (the same numbers, less overhead)
        self._output_gradient = getattr(loss_fn, "with_output_gradient", None)
        self._closed_form = (
            self._fast
            and callable(getattr(model, "functional_loss_and_gradient", None))
            and self._output_gradient is not None
        )
        self.inputs = self.targets = None
        self._array_gradient = None
        self._scratch = np.empty(self.layout.size, dtype=self._like.cpu().numpy().dtype)
        self.nfe = 0
        self.damping = self.inertia = 1.0
        self.potential_gain, self.weight_decay = 1.0, 0.0
        self.set_gains(
            damping=damping,
            inertia=inertia,
            potential_gain=potential_gain,
            weight_decay=weight_decay,
        )
        self.port = port
        offsets, shapes = self.layout.offsets, self.layout.shapes
        self._array_layout = [
            (offsets[i], offsets[i + 1], tuple(shape)) for i, shape in enumerate(shapes)
        ]

    # ----------------------------------------------------------------- set-up
    @property
    def dim(self) -> int:
        """Number of scalar parameters n; the state has 2n entries."""
        return self.layout.size

    def resolve_gains(self, **gains) -> dict:
        """Check gains and return them resolved (float or per-parameter tensor).

        Accepts ``damping``, ``inertia``, ``potential_gain`` and ``weight_decay``;
        ``None`` values are skipped. Raises ``ValueError`` naming a bad gain and value.
        """
        resolved = {}
        for name, value in gains.items():
            if name not in _GAIN_RULES:
                raise TypeError(f"Unknown gain: {name!r} (gains are {', '.join(_GAIN_RULES)})")
            if value is None:
                continue
            if name == "potential_gain":  # a scales the loss, a scalar
                resolved[name] = check_gain_value(name, value)
            else:
                current = getattr(self, name)
                resolved[name] = resolve_gain(name, value, self.layout, self._like, current)
        return resolved

    def set_gains(self, **gains) -> None:
        """Change gains; all are checked before any is changed."""
        for name, value in self.resolve_gains(**gains).items():
            setattr(self, name, value)
            if name == "inertia":
                self.inverse_inertia = 1.0 / value

    @property
    def port(self) -> Port:
        """u: a constant tensor, a function u(t, θ, p) or None (the port is closed)."""
        return self._port

    @port.setter
    def port(self, value: Port) -> None:
        self._port = value
        self._array_port = None if value is None or callable(value) else _as_array(value)

    def set_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Hold this batch: the potential is a·L on it (plus weight decay)."""
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)
        self._array_gradient = None  # the MLP's NumPy gradient on it, made when first asked

    def _numpy_gradient(self, theta: np.ndarray, scale: float, out: np.ndarray) -> None:
        """out ← scale·∇L(θ) on the CPU, NumPy in and out, for a model with its own
        backward pass (models on autograd take ``_array_rates_into``'s own way)."""
        gradient = self._array_gradient
        if gradient is None and self.takes_array_gradients:
            targets = self.array_targets(self.targets)
            output_gradient = self.loss_fn.array_form[1]
            gradient = self._array_gradient = self.model.array_gradient(
                self.inputs.numpy(), targets, output_gradient
            )
        if gradient is not None:
            gradient(theta, scale, out)
            return
        self._closed_form_gradient(torch.from_numpy(theta), self._flat.grad)
        np.multiply(self._flat.arrays[1], scale, out=out)

    def initial_state(self, momentum: torch.Tensor | None = None) -> torch.Tensor:
        """[θ; p] from the model's current parameters; p = 0 unless given."""
        theta = parameters_to_vector(p for _, p in self._trainable()).detach()
        if momentum is None:
            momentum = torch.zeros_like(theta)
        elif momentum.shape != theta.shape:
            raise ValueError(
                f"Invalid momentum: shape {tuple(momentum.shape)}, expected {tuple(theta.shape)}"
            )
        return torch.cat([theta, momentum.to(theta)])

    def write_to_model(self, xi: torch.Tensor) -> None:
        """Copy θ (the first half of ξ) into the model's parameters."""
        theta = xi[: self.dim]
        with torch.no_grad():
            for (_, p), t in zip(self._trainable(), self.layout.unflatten(theta), strict=True):
                p.copy_(t)

    def _trainable(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    # ---------------------------------------------------------------- physics
    def split(self, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return xi[: self.dim], xi[self.dim :]

    def forward(self, theta: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The model's output at parameters θ, without touching the module."""
        tensors = self.layout.unflatten(theta)
        if self._fast:
            return self.model.functional_forward(tensors, inputs)
        params = dict(zip(self.layout.names, tensors, strict=True))
        return functional_call(
            self.model, (params, self._buffers), (inputs,), tie_weights=self.layout.tie_weights
        )

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ) on the current batch."""
        if self.inputs is None:
            raise RuntimeError("No batch: call set_batch(inputs, targets) first")
        return self.loss_fn(self.forward(theta, self.inputs), self.targets)

    def potential(self, theta: torch.Tensor, loss: torch.Tensor | None = None) -> torch.Tensor:
        """a·L(θ) + (c/2)·θᵀθ; pass ``loss`` = L(θ) when it is already known."""
        loss = self.loss(theta) if loss is None else loss
        return potential_energy(loss, theta, self.potential_gain, self.weight_decay)

    def potential_gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∂H/∂θ = a∇L(θ) + cθ."""
        return self.loss_and_gradient(theta)[1]

    def loss_and_gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L(θ) on the current batch and ∂H/∂θ = a∇L(θ) + cθ, from one backward pass."""
        if self.inputs is None:
            raise RuntimeError("No batch: call set_batch(inputs, targets) first")
        if self._closed_form:
            loss, grad = self._closed_form_gradient(theta)
        else:
            loss, grad = self._flat.loss_and_gradient(theta, self._closure)
        return loss, self.potential_gain * grad + self.weight_decay * theta

    def _closed_form_gradient(self, theta: torch.Tensor, out: torch.Tensor | None = None):
        """L(θ) and the flat ∇L(θ) from the model's own backward.

        With ``out`` (the vector field's buffer) the gradient goes there and L, which
        the field does not use, is not computed (None).
        """
        loss, grads = self.model.functional_loss_and_gradient(
            self.layout.unflatten(theta),
            self.inputs,
            self.targets,
            self._output_gradient,
            need_loss=out is None,
        )
        flat = [g.reshape(-1) for g in grads]
        if out is None:
            return loss, torch.cat(flat)
        return loss, torch.cat(flat, out=out)

    @property
    def takes_array_gradients(self) -> bool:
        """Whether ``array_loss_and_gradient`` works: phviz's MLP with a phviz loss."""
        return self._closed_form and hasattr(self.loss_fn, "array_form")

    def array_targets(self, targets: torch.Tensor) -> np.ndarray:
        """Targets as ``array_loss_and_gradient`` takes them (labels become one-hot rows)."""
        prepare = self.loss_fn.array_form[0]
        width, dtype = self.layout.shapes[-1][0], self._like.cpu().numpy().dtype
        return prepare(targets.detach().cpu().numpy(), width, dtype)

    def array_loss_and_gradient(self, theta: np.ndarray, inputs: np.ndarray, targets):
        """``loss_and_gradient`` in NumPy on a batch given as arrays (``array_targets``).

        For small models on the CPU, where a run's time goes to the cost of calling
        operations on a few numbers rather than to arithmetic. Gains as arrays or floats.
        """
        arrays = [theta[a:b].reshape(s) for a, b, s in self._array_layout]
        loss, grads = self.model.array_loss_and_gradient(
            arrays, inputs, targets, self.loss_fn.array_form[1]
        )
        grad = np.concatenate([g.reshape(-1) for g in grads])
        a, c = self.potential_gain, _as_array(self.weight_decay)
        return loss, a * grad + c * theta if not _is_zero(c) else a * grad

    def velocity(self, p: torch.Tensor) -> torch.Tensor:
        """∂H/∂p = M⁻¹p."""
        return self.inverse_inertia * p

    def port_force(self, t, theta: torch.Tensor, p: torch.Tensor):
        """u(t, θ, p), or None when the port is closed."""
        if self.port is None:
            return None
        return self.port(t, theta, p) if callable(self.port) else self.port

    def momentum_rate(self, grad_potential, p, u=None) -> torch.Tensor:
        """ṗ = −∂H/∂θ − B ∂H/∂p + u."""
        rate = -grad_potential - self.damping * self.velocity(p)
        return rate if u is None else rate + u

    def __call__(self, t, xi: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = torch.empty_like(xi)
        self._rates_into(t, xi, out)
        return out

    def _closure(self) -> torch.Tensor:
        if self._fast:  # the same network without nn.Module's per-call hooks
            out = self.model.functional_forward(self._flat.params, self.inputs)
        else:
            out = self._forward(self.inputs)
        return self.loss_fn(out, self.targets)

    def _rates_into(self, t, y: torch.Tensor, out: torch.Tensor):
        """θ̇ = M⁻¹p into ``out[:n]`` and ṗ = −a∇L − cθ − BM⁻¹p + u into ``out[n:2n]``,
        from y = [θ; p; …]. Returns (v, u), u None without a port.

        One backward pass and a few in-place operations on the flat gradient: the
        field costs little more than a plain training step. On the CPU (without a port
        function, and for a state that needs no gradient) the vector arithmetic runs in
        NumPy on the tensors' memory, and v and u are NumPy arrays.
        """
        if self.inputs is None:
            raise RuntimeError("No batch: call set_batch(inputs, targets) first")
        if self._flat.arrays is not None and not callable(self.port) and not y.requires_grad:
            return self._array_rates_into(y.numpy(), out.numpy())
        n = self.dim
        theta, p, velocity, rate = y[:n], y[n : 2 * n], out[:n], out[n : 2 * n]
        if self._closed_form:
            _, grad = self._closed_form_gradient(theta, self._flat.grad)
        else:
            self._flat.backward(theta, self._closure)
            grad = self._flat.grad
        torch.mul(p, self.inverse_inertia, out=velocity)
        torch.mul(grad, -self.potential_gain, out=rate)
        _subtract_scaled(rate, self.weight_decay, theta)
        _subtract_scaled(rate, self.damping, velocity)
        u = self.port_force(t, theta, p)
        if u is not None:
            rate.add_(u)
        return velocity, u

    def _array_rates_into(self, y: np.ndarray, out: np.ndarray, ledger: bool = False):
        """``_rates_into`` on NumPy arrays (the CPU; no port function); with ``ledger``,
        ``_array_ledger_terms`` too."""
        n = self.layout.size
        theta, p, velocity, rate = y[:n], y[n : 2 * n], out[:n], out[n : 2 * n]
        a, scratch = self.potential_gain, self._scratch
        damping, decay = _as_array(self.damping), _as_array(self.weight_decay)
        np.multiply(p, _as_array(self.inverse_inertia), out=velocity)
        if not self._closed_form:  # autograd's backward
            # ṗ = −a·(∇L + (cθ + Bv)/a): the terms beside ∇L go into the buffer that
            # backward adds ∇L to, so one scaling gives ṗ (fewer passes over memory)
            terms = self._flat.arrays[1]
            np.multiply(velocity, damping / a, out=terms)
            if not _is_zero(decay):
                np.multiply(theta, decay / a, out=scratch)
                np.add(terms, scratch, out=terms)
            self._flat.backward(theta, self._closure, clear=False)
            np.multiply(terms, -a, out=rate)
        else:
            self._numpy_gradient(theta, -a, rate)
            if not _is_zero(decay):
                np.multiply(theta, decay, out=scratch)
                np.subtract(rate, scratch, out=rate)
            np.multiply(velocity, damping, out=scratch)
            np.subtract(rate, scratch, out=rate)
        u = self._array_port
        if u is not None:
            rate += u
        if ledger:
            self._array_ledger_terms(velocity, u, out)
        return velocity, u

    def energy(self, xi: torch.Tensor, loss: torch.Tensor | None = None) -> Energy:
        """Kinetic ½pᵀM⁻¹p, potential a·L + (c/2)‖θ‖², and their sum H.

        ``loss``: L(θ) on the current batch, when the caller has it already.
        """
        theta, p = self.split(xi)
        with torch.no_grad():
            kinetic = 0.5 * (p * self.velocity(p)).sum()
            potential = self.potential(theta, loss)
        return Energy(kinetic, potential, kinetic + potential)

    def hamiltonian(self, xi: torch.Tensor) -> torch.Tensor:
        return self.energy(xi).total

    def impulse(self, p: torch.Tensor, direction: torch.Tensor, energy: float) -> torch.Tensor:
        """The impulse α·d (α > 0) that raises the kinetic energy ½pᵀM⁻¹p by ``energy``.

        α solves ½α²·dᵀM⁻¹d + α·pᵀM⁻¹d = ΔE, in float64 and in the form that does not
        cancel when the kick is small against the momenta already there.
        """
        d = direction.to(torch.float64)
        q = p.detach().to(torch.float64)
        inverse = self.inverse_inertia
        if isinstance(inverse, torch.Tensor):
            inverse = inverse.to(torch.float64)
        curvature = float((d * inverse * d).sum())  # dᵀM⁻¹d
        slope = float((q * inverse * d).sum())  # pᵀM⁻¹d
        if not curvature > 0:
            raise ValueError("Invalid kick direction: it is zero")
        root = math.sqrt(slope * slope + 2.0 * curvature * energy)
        alpha = 2.0 * energy / (slope + root) if slope >= 0 else (root - slope) / curvature
        return (alpha * d).to(p.dtype)

    def dissipation(self, xi: torch.Tensor) -> torch.Tensor:
        """Power drained by damping, vᵀBv ≥ 0."""
        _, p = self.split(xi)
        v = self.velocity(p)
        return (v * self.damping * v).sum()

    def ledger_field(self, t, y: torch.Tensor) -> torch.Tensor:
        """The vector field on [ξ; D; S], with Ḋ = vᵀBv and Ṡ = vᵀu.

        Integrating D and S with the same solver as ξ makes the energy ledger
        H(t) − H(0) + D(t) − S(t) a direct measure of the integrator's error.
        """
        out = torch.empty_like(y)
        self._ledger_into(t, y, out)
        return out

    def _ledger_into(self, t, y: torch.Tensor, out: torch.Tensor) -> None:
        self.nfe += 1
        n = self.dim
        v, u = self._rates_into(t, y, out)
        if isinstance(v, np.ndarray):
            self._array_ledger_terms(v, u, out.numpy())
            return
        if isinstance(self.damping, torch.Tensor):
            out[2 * n] = (v * self.damping * v).sum()
        else:
            out[2 * n] = self.damping * torch.dot(v, v)
        if u is None:
            out[2 * n + 1] = 0.0
        else:
            out[2 * n + 1] = (v * u).sum()

    def _array_ledger_terms(self, v: np.ndarray, u, out: np.ndarray) -> None:
        """Ḋ = vᵀBv and Ṡ = vᵀu into the last two entries of ``out``."""
        n, damping = self.layout.size, self.damping
        if isinstance(damping, torch.Tensor):
            out[2 * n] = np.dot(v * _as_array(damping), v)
        else:
            out[2 * n] = damping * np.dot(v, v)
        out[2 * n + 1] = 0.0 if u is None else np.dot(v, u)

    def array_ledger_field(self) -> Callable[[float, np.ndarray, np.ndarray], None]:
        """``ledger_field`` on NumPy arrays on the CPU: ``field(t, y, out)`` writes ẏ.

        The vector arithmetic runs in NumPy; phviz's MLP with a phviz loss takes its
        gradient in NumPy too (``MLP.array_gradient``, buffers kept for the batch), any
        other module through its flat parameters. A port function gets tensors, as
        from ``ledger_field``.
        """
        if self.inputs is None:
            raise RuntimeError("No batch: call set_batch(inputs, targets) first")
        if callable(self.port):

            def field(t, y: np.ndarray, out: np.ndarray) -> None:
                self._ledger_into(torch.as_tensor(t), torch.from_numpy(y), torch.from_numpy(out))

            return field

        def field(t, y: np.ndarray, out: np.ndarray) -> None:
            self.nfe += 1
            self._array_rates_into(y, out, ledger=True)

        return field

    def critical_damping(
        self, curvature: float, inertia: float = 1.0, weight_decay: float | None = None
    ) -> float:
        """B = 2√((a·λ + c)·m): the damping that neither oscillates nor creeps for one mode.

        ``curvature`` is λ, an eigenvalue of ∇²L; the weight decay c adds to the mode's
        stiffness (``weight_decay``: c, default the system's own when it is a number).
        """
        if weight_decay is None:
            c = self.weight_decay
            weight_decay = c if not isinstance(c, torch.Tensor) else float(c.max())
        return critical_damping(
            curvature,
            inertia=inertia,
            potential_gain=self.potential_gain,
            weight_decay=weight_decay,
        )

    def top_curvature(self, theta: torch.Tensor, iterations: int = 30, seed: int = 0) -> float:
        """The largest eigenvalue λ of ∇²L(θ) on the current batch, by power iteration.

        Uses Hessian-vector products (double backward), never the Hessian itself. Power
        iteration finds the eigenvalue of largest size; if that one is negative (a
        saddle), a second pass on ∇²L − λI finds the largest one. With
        ``critical_damping(λ, m)`` it tells whether the stiffest mode is under-damped.
        """
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(leaf), leaf, create_graph=True)

            def hvp(v):
                return torch.autograd.grad(grad, leaf, v, retain_graph=True)[0]

            largest = _power_iteration(hvp, theta, iterations, seed)
            if largest < 0:
                shifted = _power_iteration(lambda v: hvp(v) - largest * v, theta, iterations, seed)
                largest = shifted + largest
        return largest


def _as_array(gain):
    """A gain as NumPy sees it: floats stay floats, tensors become arrays."""
    return gain.detach().cpu().numpy() if isinstance(gain, torch.Tensor) else gain


def _is_zero(gain) -> bool:
    return not isinstance(gain, np.ndarray) and gain == 0.0


def _subtract_scaled(out: torch.Tensor, gain, x: torch.Tensor) -> None:
    """out −= gain·x in place, for a float or a per-coordinate tensor gain."""
    if isinstance(gain, torch.Tensor):
        out.addcmul_(gain, x, value=-1.0)
    elif gain != 0.0:
        out.add_(x, alpha=-gain)


def _power_iteration(matvec, like: torch.Tensor, iterations: int, seed: int) -> float:
    """The eigenvalue of largest size of a symmetric operator, from a seeded start."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(like.shape, generator=g, dtype=like.dtype).to(like.device)
    v = v / v.norm()
    eigenvalue = 0.0
    for _ in range(iterations):
        w = matvec(v)
        eigenvalue = float(v @ w)
        norm = w.norm()
        if not torch.isfinite(norm) or norm == 0:
            break
        v = w / norm
    return eigenvalue


def damping_decay(damping, inertia, h: float):
    """e^{−h·B·M⁻¹}: the exact flow of ṗ = −B M⁻¹ p over a time h, per coordinate.

    Always in (0, 1] for B ≥ 0, M > 0 and h ≥ 0, however stiff the damping.
    ``damping`` and ``inertia`` are floats or tensors broadcastable against p.
    """
    rate = damping / inertia
    if isinstance(rate, torch.Tensor):
        return torch.exp(-h * rate)
    if isinstance(rate, np.ndarray):
        return np.exp(-h * rate)
    return math.exp(-h * rate)


def conformal_symplectic_step(theta, p, force, h: float, damping, inertia):
    """One step of the damped system by splitting: (θ, p, energy dissipated).

    The damping flow ṗ = −B M⁻¹ p is linear and diagonal, so it is solved exactly
    over h/2 on both sides of a leapfrog (velocity Verlet) step of the conservative
    part θ̇ = M⁻¹p, ṗ = force(θ), with force(θ) = −(a∇L(θ) + cθ) (+ u). The
    composition is second order and conformal symplectic, and stable for any B:
    the damping never enters a step-size restriction. The energy the two exact
    damping half-steps drain, ½(pᵀM⁻¹p before − after), is returned, so the
    ledger's dissipated term is exact and its residual is the leapfrog's error.

    A pure function of tensors (``force`` a function of θ alone), so it can be
    ``torch.func.vmap``-ed over an ensemble of gains.
    """
    decay = damping_decay(damping, inertia, 0.5 * h)

    def kinetic(q):
        return 0.5 * (q * q / inertia).sum(-1)

    damped = decay * p
    dissipated = kinetic(p) - kinetic(damped)
    p = damped + 0.5 * h * force(theta)
    theta = theta + h * p / inertia
    p = p + 0.5 * h * force(theta)
    damped = decay * p
    dissipated = dissipated + kinetic(p) - kinetic(damped)
    return theta, damped, dissipated


def critical_damping(curvature, *, inertia=1.0, potential_gain=1.0, weight_decay=0.0):
    """B = 2√((a·λ + c)·m) for curvature λ of L; 0 where a·λ + c ≤ 0 (no oscillation).

    The one home of this formula; works on floats and NumPy arrays alike (broadcasting).
    """
    stiffness = np.maximum(potential_gain * np.asarray(curvature, dtype=float) + weight_decay, 0)
    value = 2.0 * np.sqrt(stiffness * inertia)
    return float(value) if np.ndim(value) == 0 else value
