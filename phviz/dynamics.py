"""The port-Hamiltonian equations of a network's training: H, the vector field, the ledger.

State ξ = [θ; p]: θ are the parameters of a ``torch.nn.Module`` flattened into one
vector, p their momenta. With a loss L over the current batch,

    H(θ, p) = a·L(θ) + (c/2)·θᵀθ + ½·pᵀM⁻¹p
    θ̇ = M⁻¹p
    ṗ = −a∇L(θ) − cθ − B M⁻¹p + u

so that Ḣ = −vᵀBv + vᵀu with v = M⁻¹p. This module is the one home of these
equations: the solvers, the optimizer, the trainer and the views call it. How ∇L is
computed (autograd, or a written-out backward pass) is the system's route
(``phviz.routes``), chosen once when it is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from .gains import GAINS, Gain, as_array, check_gain_value, is_zero, resolve_gain
from .parameters import ParameterLayout
from .routes import choose_route

Port = torch.Tensor | Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None


class Energy(NamedTuple):
    """Kinetic, potential and total energy (the Hamiltonian) of one state."""

    kinetic: torch.Tensor
    potential: torch.Tensor
    total: torch.Tensor


def potential_energy(loss, theta, potential_gain, weight_decay):
    """a·L + (c/2)·θᵀθ, summed over θ's last axis (one θ, or one row per θ).

    ``loss`` is L(θ) (one value per row); ``weight_decay`` c is a float or one value
    per scalar parameter. Without weight decay the θ term, a pass over every row, is skipped.
    """
    if is_zero(weight_decay):
        return potential_gain * loss
    return potential_gain * loss + 0.5 * (weight_decay * theta * theta).sum(-1)


def momentum_rate(grad_potential, velocity, damping, port=None, out=None, scratch=None):
    """ṗ = −∂H/∂θ − B·∂H/∂p + u, with ∂H/∂θ = a∇L + cθ and ∂H/∂p = v = M⁻¹p.

    The one home of ṗ: tensors or NumPy arrays, gains a float or one per coordinate,
    ``port`` u or None; ``out`` may be ``grad_potential``. NumPy's B·v goes into
    ``scratch`` when given (the ledger reads vᵀBv there)."""
    if out is None:
        rate = -grad_potential - damping * velocity
        return rate if port is None else rate + port
    if isinstance(out, np.ndarray):
        friction = np.multiply(velocity, damping, out=scratch)
        np.add(grad_potential, friction, out=out)
        np.negative(out, out=out)
    else:
        torch.add(grad_potential, velocity * damping, out=out)
        out.neg_()
    if port is not None:
        out += port
    return out


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


def critical_damping(curvature, *, inertia=1.0, potential_gain=1.0, weight_decay=0.0):
    """B = 2√((a·λ + c)·m) for curvature λ of L; 0 where a·λ + c ≤ 0 (no oscillation).

    The one home of this formula; works on floats and NumPy arrays alike (broadcasting).
    """
    stiffness = np.maximum(potential_gain * np.asarray(curvature, dtype=float) + weight_decay, 0)
    value = 2.0 * np.sqrt(stiffness * inertia)
    return float(value) if np.ndim(value) == 0 else value


class PortHamiltonianSystem:
    """The damped port-Hamiltonian system of a model's training (see the module).

    ``system(t, ξ)`` is dξ/dt, so ``torchdiffeq.odeint(system, ξ0, ts)`` integrates the
    equations as written. Gains are floats, mappings from parameter name (or module
    prefix) to float, or 1-D tensors with one entry per scalar parameter; bad values
    raise ``ValueError`` naming the gain. ``port`` is u: a constant tensor, a function
    u(t, θ, p), or None (closed).
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
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model, self.loss_fn = model, loss_fn
        self.layout = ParameterLayout(model)
        first = next(p for p in model.parameters() if p.requires_grad)
        self.device, self.dtype = first.device, first.dtype
        self._like = first.detach()
        self._buffers = dict(model.named_buffers())
        self._functional = callable(getattr(model, "functional_forward", None)) and all(
            p.requires_grad for p in model.parameters()
        )
        self.route = choose_route(model, loss_fn, self.layout)
        self.inputs = self.targets = None
        self._array_field = None
        self.nfe = 0
        self.damping = self.inertia = self.inverse_inertia = 1.0
        self.potential_gain, self.weight_decay = 1.0, 0.0
        self.set_gains(
            damping=damping,
            inertia=inertia,
            potential_gain=potential_gain,
            weight_decay=weight_decay,
        )
        self.port = port

    # ----------------------------------------------------------------- set-up
    @property
    def dim(self) -> int:
        """Number of scalar parameters n; the state has 2n entries."""
        return self.layout.size

    def resolve_gains(self, **gains) -> dict:
        """Check gains and return them resolved (float or per-parameter tensor);
        ``None`` values are skipped. Raises ``ValueError`` naming a bad gain and value."""
        resolved = {}
        for name, value in gains.items():
            if name not in GAINS:
                raise TypeError(f"Unknown gain: {name!r} (gains are {', '.join(GAINS)})")
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
        self._array_field = None  # made again with these gains when next asked
        # what array_force needs of them, once: it is called at every step of a run
        decay = self.weight_decay
        self._array_decay = None if is_zero(decay) else as_array(decay)

    def gains(self, arrays: bool = False) -> dict:
        """The gains in force by name (NumPy arrays in place of tensors with ``arrays``)."""
        values = {name: getattr(self, name) for name in GAINS}
        return {k: as_array(v) for k, v in values.items()} if arrays else values

    @property
    def port(self) -> Port:
        """u: a constant tensor, a function u(t, θ, p) or None (the port is closed)."""
        return self._port

    @port.setter
    def port(self, value: Port) -> None:
        self._port = value
        self._array_port = None if value is None or callable(value) else as_array(value)
        self._array_field = None

    def port_force(self, t, theta, p):
        """u(t, θ, p), or None when the port is closed (an array for array states)."""
        if self._port is None:
            return None
        if isinstance(theta, np.ndarray):
            if self._array_port is not None:
                return self._array_port
            u = self._port(torch.as_tensor(t), torch.from_numpy(theta), torch.from_numpy(p))
            return u.detach().numpy()
        return self._port(t, theta, p) if callable(self._port) else self._port

    def set_batch(self, inputs: torch.Tensor, targets: torch.Tensor, *, arrays=None) -> None:
        """Hold this batch: the potential is a·L on it (plus weight decay). ``arrays``:
        the batch in the route's NumPy form (``route.array_batch``), made beforehand."""
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)
        self.route.hold(self.inputs, self.targets, arrays)

    @property
    def takes_arrays(self) -> bool:
        """Whether the state may be NumPy arrays (``array_force``, ``array_ledger_field``):
        on the CPU, for a port that is not a function of the state."""
        return self.route.takes_arrays and not callable(self._port)

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
        if self._functional:
            return self.model.functional_forward(tensors, inputs)
        params = dict(zip(self.layout.names, tensors, strict=True))
        return functional_call(
            self.model, (params, self._buffers), (inputs,), tie_weights=self.layout.tie_weights
        )

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ) on the current batch."""
        self.check_batch()
        return self.loss_fn(self.forward(theta, self.inputs), self.targets)

    def potential(self, theta, loss=None):
        """a·L(θ) + (c/2)·θᵀθ; pass ``loss`` = L(θ) when it is already known."""
        loss = self.loss(theta) if loss is None else loss
        decay = self.weight_decay
        if isinstance(theta, np.ndarray):
            decay = as_array(decay)
        return potential_energy(loss, theta, self.potential_gain, decay)

    def loss_and_gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L(θ) on the current batch and ∂H/∂θ = a∇L(θ) + cθ, from one backward pass."""
        self.check_batch()
        loss, grad = self.route.loss_and_gradient(theta)
        return loss, self.potential_gain * grad + self.weight_decay * theta

    def potential_gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∂H/∂θ = a∇L(θ) + cθ."""
        return self.loss_and_gradient(theta)[1]

    def force(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L(θ) and the conservative force −∂H/∂θ = −(a∇L(θ) + cθ), a new tensor."""
        self.nfe += 1
        loss, grad = self.loss_and_gradient(theta)
        return loss, grad.neg_()

    def array_force(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``force`` for NumPy θ on the CPU (``takes_arrays``): L(θ) and a new array."""
        if self.inputs is None:
            self.check_batch()
        self.nfe += 1
        out = np.empty_like(theta)
        loss = self.route.gradient_into(theta, -self.potential_gain, out)
        if self._array_decay is not None:
            out -= self._array_decay * theta
        return loss, out

    def array_loss(self, theta: np.ndarray) -> float:
        """L(θ) for NumPy θ on the CPU (``takes_arrays``), the forward pass alone."""
        self.check_batch()
        return self.route.value(theta)

    def velocity(self, p):
        """∂H/∂p = M⁻¹p."""
        if isinstance(p, np.ndarray):
            return as_array(self.inverse_inertia) * p
        return self.inverse_inertia * p

    def __call__(self, t, xi: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(xi)
        if self._on_arrays(xi):
            self.array_ledger_field()(t, xi.numpy(), out.numpy())
            return out
        self.nfe += 1
        self._rates_into(t, xi, out)
        return out

    def _on_arrays(self, y: torch.Tensor) -> bool:
        # on the CPU the vector arithmetic runs in NumPy on the tensors' memory: a NumPy
        # call on a vector this size costs a fraction of a torch one
        return self.takes_arrays and not y.requires_grad and y.device.type == "cpu"

    def check_batch(self) -> None:
        """A ``RuntimeError`` when no batch is held yet."""
        if self.inputs is None:
            raise RuntimeError("No batch: call set_batch(inputs, targets) first")

    def _rates_into(self, t, y: torch.Tensor, out: torch.Tensor):
        """θ̇ = M⁻¹p into ``out[:n]`` and ṗ into ``out[n:2n]``, from y = [θ; p; …].
        Returns (v, u), u None without a port."""
        self.check_batch()
        n = self.dim
        theta, p, velocity, rate = y[:n], y[n : 2 * n], out[:n], out[n : 2 * n]
        _, grad = self.route.loss_and_gradient(theta, need_loss=False)
        torch.mul(p, self.inverse_inertia, out=velocity)
        torch.mul(grad, self.potential_gain, out=rate)
        if not is_zero(self.weight_decay):
            rate.add_(theta * self.weight_decay)
        u = self.port_force(t, theta, p)
        momentum_rate(rate, velocity, self.damping, u, out=rate)
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

    def dissipation(self, xi: torch.Tensor) -> torch.Tensor:
        """Power drained by damping, vᵀBv ≥ 0."""
        _, p = self.split(xi)
        v = self.velocity(p)
        return (v * self.damping * v).sum()

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

    def ledger_field(self, t, y: torch.Tensor) -> torch.Tensor:
        """The vector field on [ξ; D; S], with Ḋ = vᵀBv and Ṡ = vᵀu.

        Integrating D and S with the same solver as ξ makes the energy ledger
        H(t) − H(0) + D(t) − S(t) a direct measure of the integrator's error.
        """
        out = torch.empty_like(y)
        if self._on_arrays(y):
            self.array_ledger_field()(t, y.numpy(), out.numpy())
            return out
        self.nfe += 1
        n = self.dim
        v, u = self._rates_into(t, y, out)
        out[2 * n] = (v * self.damping * v).sum()
        out[2 * n + 1] = 0.0 if u is None else (v * u).sum()
        return out

    def array_ledger_field(self) -> Callable[[float, np.ndarray, np.ndarray], None]:
        """``ledger_field`` on NumPy arrays on the CPU: ``field(t, y, out)`` writes ẏ
        (of [θ; p], or of [θ; p; D; S] with the ledger's rates)."""
        if self._array_field is None:
            from .fields import array_field

            self._array_field = array_field(self)
        return self._array_field
