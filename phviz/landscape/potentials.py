"""The potential a·L(θ) + (c/2)‖θ‖² for many θ at once, and its surfaces over planes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..dynamics import (
    DirectForward,
    ParameterLayout,
    check_gain_value,
    potential_energy,
    resolve_gain,
)
from .grid import grid_points
from .inputs import as_matrix, check_chunk
from .planes import Plane


class Potential:
    """V(θ) = a·L(θ) + (c/2)·θᵀθ on fixed data, for many θ at once.

    Rows of θ are evaluated ``chunk_size`` at a time so memory stays bounded, on the
    model's device and in its dtype: a chain of Linear layers and activations as
    batched matmuls (``LinearChain``), any other module with ``torch.func.vmap`` over
    ``functional_call`` (with the model's buffers). ``batched=False`` evaluates row by
    row in a Python loop (a reference, and a way out for models vmap cannot handle).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        potential_gain: float = 1.0,
        weight_decay=0.0,
        chunk_size: int = 256,
        batched: bool = True,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if len(inputs) != len(targets):
            raise ValueError(f"Invalid data: {len(inputs)} inputs but {len(targets)} targets")
        self.model, self.loss_fn = model, loss_fn
        self.layout = ParameterLayout(model)
        first = next(p for p in model.parameters() if p.requires_grad)
        self.device, self.dtype = first.device, first.dtype
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)
        if self.inputs.is_floating_point():
            self.inputs = self.inputs.to(self.dtype)
        self.potential_gain = check_gain_value("potential_gain", potential_gain)
        self.weight_decay = resolve_gain("weight_decay", weight_decay, self.layout, first.detach())
        self.chunk_size = check_chunk(chunk_size)
        self.batched = bool(batched)
        self._buffers = dict(model.named_buffers())
        self._batched_loss = vmap(self._loss)
        self._chain = LinearChain(model, self.layout, self.inputs)
        self._chain_loss = vmap(loss_fn, in_dims=(0, None))

    @classmethod
    def from_trainer(cls, trainer, *, batch: str = "train", chunk_size: int = 256) -> Potential:
        """The trainer's potential with its current gains.

        ``batch="train"``: the whole training set (the loss the run reports);
        ``batch="current"``: the mini-batch it holds now (the switched potential H_k).
        """
        system = trainer.system
        if batch == "train":
            inputs, targets = trainer.dataset.x_train, trainer.dataset.y_train
        elif batch == "current":
            if system.inputs is None:
                raise ValueError("Invalid batch: 'current', but the trainer holds no batch")
            # read between two steps (or on the training thread) for a matching pair
            inputs, targets = system.inputs, system.targets
        else:
            raise ValueError(f"Invalid batch: {batch!r} (choose 'train' or 'current')")
        return cls(
            trainer.model,
            trainer.dataset.loss_fn,
            inputs,
            targets,
            potential_gain=system.potential_gain,
            weight_decay=system.weight_decay,
            chunk_size=chunk_size,
        )

    def _loss(self, theta: torch.Tensor) -> torch.Tensor:
        params = dict(zip(self.layout.names, self.layout.unflatten(theta), strict=True))
        out = functional_call(
            self.model,
            (params, self._buffers),
            (self.inputs,),
            tie_weights=self.layout.tie_weights,
        )
        return self.loss_fn(out, self.targets)

    @torch.no_grad()
    def evaluate_rows(self, thetas: torch.Tensor) -> torch.Tensor:
        """V at each row of a (N, n) tensor already on the model's device and dtype."""
        if self.batched and self._chain.usable:
            losses = self._chain_loss(self._chain(thetas), self.targets)
        elif self.batched:
            losses = self._batched_loss(thetas)
        else:
            losses = torch.stack([self._loss(row) for row in thetas])
        return potential_energy(losses, thetas, self.potential_gain, self.weight_decay)

    def __call__(self, thetas) -> np.ndarray:
        """V at each parameter vector (rows of an (N, n) array, or one vector)."""
        rows = as_matrix(thetas, self.layout.size)
        out = [
            self.evaluate_rows(chunk.to(device=self.device, dtype=self.dtype))
            for chunk in rows.split(self.chunk_size)
        ]
        return torch.cat(out).double().cpu().numpy()

    def on_plane(self, plane: Plane, xy) -> np.ndarray:
        """V at plane coordinates ``xy`` (N, 2), the points built chunk by chunk."""
        plane = plane.to(self.device, self.dtype)
        xy = torch.as_tensor(np.asarray(xy, dtype=np.float64)).reshape(-1, 2)
        out = [self.evaluate_rows(plane.points(chunk)) for chunk in xy.split(self.chunk_size)]
        return torch.cat(out).double().cpu().numpy()

    def surface(self, plane: Plane, extent, resolution=51):
        """(xs, ys, Z), Z[i, j] = V(origin + xs[j]·d1 + ys[i]·d2) (see ``loss_surface``)."""
        if plane.dim != self.layout.size:
            raise ValueError(
                f"Invalid plane: its vectors have length {plane.dim}, the model has "
                f"{self.layout.size} parameters"
            )
        xs, ys, grid = grid_points(extent, resolution)
        return xs, ys, self.on_plane(plane, grid).reshape(len(ys), len(xs))

    def profile(self, plane: Plane, thetas) -> PathProfile:
        """For a path: its projection, V at each point, and V at each projection."""
        rows = as_matrix(thetas, self.layout.size)
        projection = plane.project(rows)
        return PathProfile(
            projection.xy, projection.off_plane, self(rows), self.on_plane(plane, projection.xy)
        )


# Modules that act on each number alone and hold no parameters: a chunk of θ passes
# through them as one (rows, points, features) tensor.
_ELEMENTWISE = frozenset(
    {
        torch.nn.CELU,
        torch.nn.ELU,
        torch.nn.GELU,
        torch.nn.Hardsigmoid,
        torch.nn.Hardswish,
        torch.nn.Hardtanh,
        torch.nn.Identity,
        torch.nn.LeakyReLU,
        torch.nn.LogSigmoid,
        torch.nn.Mish,
        torch.nn.ReLU,
        torch.nn.ReLU6,
        torch.nn.SELU,
        torch.nn.SiLU,
        torch.nn.Sigmoid,
        torch.nn.Softplus,
        torch.nn.Softsign,
        torch.nn.Tanh,
        torch.nn.Tanhshrink,
    }
)


# Functions and tensor methods that act on each number alone: a forward that calls
# them on the previous result (with constant further arguments, if any) between
# Linear layers is a chain too.
_ELEMENTWISE_FUNCTIONS = frozenset(
    {
        torch.tanh,
        torch.relu,
        torch.sigmoid,
        torch.nn.functional.celu,
        torch.nn.functional.elu,
        torch.nn.functional.gelu,
        torch.nn.functional.hardsigmoid,
        torch.nn.functional.hardswish,
        torch.nn.functional.hardtanh,
        torch.nn.functional.leaky_relu,
        torch.nn.functional.logsigmoid,
        torch.nn.functional.mish,
        torch.nn.functional.relu,
        torch.nn.functional.relu6,
        torch.nn.functional.selu,
        torch.nn.functional.sigmoid,
        torch.nn.functional.silu,
        torch.nn.functional.softplus,
        torch.nn.functional.softsign,
        torch.nn.functional.tanh,
        torch.nn.functional.tanhshrink,
    }
)
_ELEMENTWISE_METHODS = frozenset({"relu", "sigmoid", "tanh"})


def traced_steps(model: torch.nn.Module) -> tuple[list, list] | None:
    """What a module's own ``forward`` runs, one step after another, found by tracing
    it (``torch.fx``): its submodules and elementwise functions in order, and every
    module involved. None unless the forward is such a chain: one input, each step
    called on the previous one's result (a function may take further arguments, as
    long as they are constants: ``F.softplus(h, beta=10.0)``). Every module
    in the model counts as involved: a hook on any of them, even one that the trace
    went through, makes the chain stand aside."""
    modules = list(model.modules())
    if any(type(m).__call__ is not torch.nn.Module.__call__ for m in modules):
        return None  # a module that does more than its forward when called
    try:
        graph = torch.fx.Tracer().trace(model)
    except Exception:  # control flow on values, or anything else fx cannot follow
        return None
    nodes = list(graph.nodes)
    if len(nodes) < 3 or [n.op for n in nodes].count("placeholder") != 1:
        return None
    steps, previous = [], nodes[0]
    for node in nodes[1:-1]:
        args, kwargs = node.args[1:], node.kwargs
        if node.args[:1] != (previous,) or _has_node(args) or _has_node(kwargs):
            return None
        if node.op == "call_module" and not (args or kwargs):
            steps.append(model.get_submodule(node.target))
        elif node.op == "call_function" and node.target in _ELEMENTWISE_FUNCTIONS:
            steps.append(functools.partial(node.target, *args, **kwargs))
        elif node.op == "call_method" and node.target in _ELEMENTWISE_METHODS:
            steps.append(functools.partial(getattr(torch, node.target), *args, **kwargs))
        else:
            return None
        previous = node
    if nodes[-1].op != "output" or nodes[-1].args != (previous,):
        return None
    return steps, modules


def _has_node(value) -> bool:
    """Whether a traced call's argument depends on the input (holds a ``torch.fx.Node``)."""
    found = []
    torch.fx.node.map_arg(value, found.append)
    return bool(found)


def _elementwise(step) -> bool:
    if isinstance(step, functools.partial):
        step = step.func
    return type(step) in _ELEMENTWISE or step in _ELEMENTWISE_FUNCTIONS


class LinearChain:
    """Many θ through an ``nn.Sequential`` of Linear layers and activations at once.

    Under vmap a Linear with a batch of weights becomes a batched matmul followed by a
    separate broadcast add of the biases, about a quarter of a small network's time.
    Here each bias is the matmul's starting value (``baddbmm``), so a chunk of θ costs
    what its forward passes cost. It serves a chain (nested ones flattened) of
    ``nn.Linear`` layers and the parameter-free elementwise activations above, a Linear
    first, on 2-D inputs, when every trainable parameter is one of the chain's; any
    other module whose ``forward`` traces to such a chain (``traced_steps``) too.
    ``usable`` also checks, at each call, that calling the model would run no hook.
    """

    def __init__(self, model: torch.nn.Module, layout: ParameterLayout, inputs: torch.Tensor):
        self.layout, self.inputs = layout, inputs
        self.direct = DirectForward(model)
        self.steps = None
        if inputs.dim() != 2:
            return
        if self.direct.steps is None and not isinstance(model, torch.nn.Sequential):
            traced = traced_steps(model)
            if traced is None:
                return
            self.direct = DirectForward(model, traced)
        self.steps = self._plan(model, self.direct.steps)

    @staticmethod
    def _plan(model, modules) -> list | None:
        if not modules or type(modules[0]) is not torch.nn.Linear:
            return None  # an activation first would act on the data itself (in place, even)
        trainable = [p for _, p in model.named_parameters() if p.requires_grad]
        index = {id(p): i for i, p in enumerate(trainable)}
        steps, used = [], set()
        for module in modules:
            if type(module) is torch.nn.Linear:
                w = index.get(id(module.weight))
                b = None if module.bias is None else index.get(id(module.bias))
                if w is None or (b is None and module.bias is not None):
                    return None  # a frozen weight or bias: not in θ
                steps.append((w, b, tuple(module.weight.shape)))
                used.update((w, b))
            elif _elementwise(module):
                steps.append(module)
            else:
                return None
        used.discard(None)
        return steps if len(used) == len(trainable) else None

    @property
    def usable(self) -> bool:
        return self.steps is not None and self.direct.plain

    def __call__(self, thetas: torch.Tensor) -> torch.Tensor:
        """The model's outputs (rows, points, outputs) at each row of ``thetas``."""
        tensors = thetas.split(self.layout.numels, dim=1)
        h = self.inputs.expand(len(thetas), *self.inputs.shape)
        for step in self.steps:
            if isinstance(step, tuple):
                w, b, shape = step
                weight_t = tensors[w].view(-1, *shape).transpose(1, 2)
                if b is None:
                    h = torch.bmm(h, weight_t)
                else:
                    h = torch.baddbmm(tensors[b].unsqueeze(1), h, weight_t)
            else:
                h = step(h)
        return h


class PathProfile(NamedTuple):
    """A path seen on a plane: where it projects, how far off it is, and two potentials.

    ``actual`` is V at each θ(t); ``on_plane`` is the surface's value at its
    projection. Where they differ, the picture misleads: the path is off the plane.
    """

    xy: np.ndarray
    off_plane: np.ndarray
    actual: np.ndarray
    on_plane: np.ndarray


def loss_surface(
    model: torch.nn.Module,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    plane: Plane,
    *,
    extent=(-1.0, 1.0, -1.0, 1.0),
    resolution=51,
    potential_gain: float = 1.0,
    weight_decay=0.0,
    chunk_size: int = 256,
    batched: bool = True,
):
    """The potential a·L + (c/2)‖θ‖² over a grid on ``plane``.

    Returns (xs, ys, Z) as numpy arrays with Z.shape == (len(ys), len(xs)) and
    Z[i, j] the potential at origin + xs[j]·d1 + ys[i]·d2. ``resolution`` is points
    per axis (an int, or (nx, ny)); grid points are evaluated with vmap in chunks of
    ``chunk_size`` on the model's device. Points where the loss overflows give inf
    or NaN, left for the caller to mask.
    """
    potential = Potential(
        model,
        loss_fn,
        inputs,
        targets,
        potential_gain=potential_gain,
        weight_decay=weight_decay,
        chunk_size=chunk_size,
        batched=batched,
    )
    return potential.surface(plane, extent, resolution)


def trainer_surface(
    trainer, plane: Plane, *, extent, resolution=51, batch="train", chunk_size: int = 256
):
    """``loss_surface`` for a Trainer: its model, gains, and training set or current batch."""
    potential = Potential.from_trainer(trainer, batch=batch, chunk_size=chunk_size)
    return potential.surface(plane, extent, resolution)
