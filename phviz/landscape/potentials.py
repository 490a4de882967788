"""The potential a·L(θ) + (c/2)‖θ‖² for many θ at once, and its surfaces over planes."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..dynamics import (
    ParameterLayout,
    check_gain_value,
    potential_energy,
    resolve_gain,
)
from ..tracing import ELEMENTWISE, LAYERS, DirectForward, Ref
from .grid import grid_points
from .inputs import as_matrix, check_chunk
from .planes import Plane


class Potential:
    """V(θ) = a·L(θ) + (c/2)·θᵀθ on fixed data, for many θ at once.

    Rows of θ are evaluated ``chunk_size`` at a time so memory stays bounded, on the
    model's device and in its dtype (None: as many as keep a chunk's widest layer
    output, over every data point, within 16 MiB, and at most 256; under 32 MiB a
    block freed by one chunk can be reused by the next, see ``phviz.memory``). A
    network of Linear layers, activations and skip connections runs as batched
    matmuls (``LinearGraph``), any other module with ``torch.func.vmap`` over
    ``functional_call`` (with the model's buffers).
    ``batched=False`` evaluates row by row in a Python loop (a reference, and a way out
    for models vmap cannot handle).
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
        chunk_size: int | None = None,
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
        self.chunk_size = (
            chunk_rows(model, len(self.inputs)) if chunk_size is None else check_chunk(chunk_size)
        )
        self.batched = bool(batched)
        self._buffers = dict(model.named_buffers())
        self._batched_loss = vmap(self._loss)
        self._graph = LinearGraph(model, self.layout, self.inputs)
        self._graph_loss = vmap(loss_fn, in_dims=(0, None))

    @classmethod
    def from_trainer(
        cls, trainer, *, batch: str = "train", chunk_size: int | None = None
    ) -> Potential:
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
        if self.batched and self._graph.usable:
            losses = self._graph_loss(self._graph(thetas), self.targets)
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


CHUNK_BYTES = 16 * 2**20  # a chunk's widest layer output, at most
MAX_CHUNK = 256


def chunk_rows(model: torch.nn.Module, n_points: int) -> int:
    """Rows of θ per chunk for ``model`` on ``n_points`` data points: as many as keep
    the widest layer's output (its largest first dimension of a weight matrix) within
    ``CHUNK_BYTES``, between 1 and ``MAX_CHUNK``."""
    weights = [p for p in model.parameters() if p.dim() >= 2]
    if not weights:
        return MAX_CHUNK
    widest = max(p.shape[0] for p in weights)
    per_row = max(1, n_points) * widest * weights[0].element_size()
    return int(max(1, min(MAX_CHUNK, CHUNK_BYTES // per_row)))


class _Linear(NamedTuple):
    """An ``nn.Linear`` whose weight and bias are θ's tensors ``weight`` and ``bias``."""

    weight: int
    bias: int | None
    shape: tuple[int, int]


class _LayerNorm(NamedTuple):
    """An ``nn.LayerNorm`` over the last axis, its scale and shift θ's tensors (None:
    none)."""

    weight: int | None
    bias: int | None
    shape: tuple[int]
    eps: float


def _indices(module, index: dict, names: tuple[str, ...]) -> list | None:
    """The positions in θ of a module's parameters ``names`` (None for one it has not);
    None if one of them is frozen, so not in θ."""
    found = []
    for name in names:
        p = getattr(module, name)
        i = None if p is None else index.get(id(p))
        if p is not None and i is None:
            return None
        found.append(i)
    return found


class LinearGraph:
    """Many θ through a network of layers and elementwise operations at once.

    Under vmap a Linear with a batch of weights becomes a batched matmul followed by a
    separate broadcast add of the biases, about a quarter of a small network's time.
    Here each bias is the matmul's starting value (``baddbmm``), so a chunk of θ costs
    what its forward passes cost. It serves an ``nn.Sequential`` (nested ones
    flattened) of ``nn.Linear`` and ``nn.LayerNorm`` layers and the parameter-free
    elementwise activations above, not an activation first, and any other module whose
    ``forward`` traces to such layers, activations and sums or products of results
    (``phviz.tracing``): skip connections too. The inputs are rows of features (2-D),
    and every trainable parameter is one of the layers'. Each value then has the rows
    of the data as its second axis and the chunk's θ as its first. ``usable`` also
    checks, at each call, that calling the model would run no hook.
    """

    def __init__(self, model: torch.nn.Module, layout: ParameterLayout, inputs: torch.Tensor):
        self.layout, self.inputs = layout, inputs
        self.direct = DirectForward(model)
        self.steps = None
        if inputs.dim() != 2:
            return
        if self.direct.traced is not None:  # a traced forward: a chain, or a graph
            found, modules = self.direct.traced
            if self.direct.steps is None:  # only to ask whether calling it runs a hook
                self.direct = DirectForward(model, (found, modules))
        elif self.direct.steps is not None:  # a plain nn.Sequential: one step after another
            if type(self.direct.steps[0]) in ELEMENTWISE:
                return  # an activation first would act on the data itself (in place, even)
            found = [(m, (Ref(i - 1),), {}) for i, m in enumerate(self.direct.steps)]
        else:
            return
        self.steps = self._plan(model, found)

    @staticmethod
    def _plan(model, found) -> list | None:
        """The steps with each layer as a ``_Linear`` or ``_LayerNorm``, and after each
        the results no later step needs (freed as the chunk goes); None if a parameter
        is not in θ or a step is none of those this class runs."""
        trainable = [p for _, p in model.named_parameters() if p.requires_grad]
        index = {id(p): i for i, p in enumerate(trainable)}
        steps, used, last = [], set(), {}
        for i, (op, args, kwargs) in enumerate(found):
            if type(op) in LAYERS:
                found_in_theta = _indices(op, index, ("weight", "bias"))
                if found_in_theta is None:
                    return None  # a frozen weight or bias: not in θ
                w, b = found_in_theta
                if type(op) is torch.nn.Linear:
                    op = _Linear(w, b, tuple(op.weight.shape))
                elif len(op.normalized_shape) == 1:
                    op = _LayerNorm(w, b, tuple(op.normalized_shape), op.eps)
                else:
                    return None  # normalised over more than the features
                used.update((w, b))
            elif isinstance(op, torch.nn.Module) and type(op) not in ELEMENTWISE:
                return None
            steps.append((op, args, kwargs))
            for a in (*args, *kwargs.values()):
                if type(a) is Ref and a >= 0:
                    last[a] = i
        used.discard(None)
        if len(used) != len(trainable):
            return None
        done = [[] for _ in steps]
        for ref, i in last.items():
            done[i].append(ref)
        return [(*step, tuple(gone)) for step, gone in zip(steps, done, strict=True)]

    @property
    def usable(self) -> bool:
        return self.steps is not None and self.direct.plain

    def __call__(self, thetas: torch.Tensor) -> torch.Tensor:
        """The model's outputs (rows, points, outputs) at each row of ``thetas``."""
        tensors = thetas.split(self.layout.numels, dim=1)
        n = len(thetas)
        results = {-1: self.inputs}
        h = self.inputs
        for i, (op, args, kwargs, done) in enumerate(self.steps):
            given = [results[a] if type(a) is Ref else a for a in args]
            if isinstance(op, _Linear):
                (h,) = given
                if h.dim() == 2:  # the data, or what came of it alone
                    h = h.expand(n, *h.shape)
                weight_t = tensors[op.weight].view(-1, *op.shape).transpose(1, 2)
                if op.bias is None:
                    h = torch.bmm(h, weight_t)
                else:
                    h = torch.baddbmm(tensors[op.bias].unsqueeze(1), h, weight_t)
            elif isinstance(op, _LayerNorm):
                (h,) = given
                h = torch.nn.functional.layer_norm(h, op.shape, eps=op.eps)
                scale = None if op.weight is None else tensors[op.weight].unsqueeze(1)
                shift = None if op.bias is None else tensors[op.bias].unsqueeze(1)
                if scale is not None and shift is not None:
                    h = torch.addcmul(shift, h, scale)  # one pass over the chunk, not two
                elif scale is not None:
                    h = h * scale
                elif shift is not None:
                    h = h + shift
            else:
                kw = {k: results[v] if type(v) is Ref else v for k, v in kwargs.items()}
                h = op(*given, **kw)
            results[i] = h
            for ref in done:
                del results[ref]
        return h if h.dim() == 3 else h.expand(n, *h.shape)


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
    chunk_size: int | None = None,
    batched: bool = True,
):
    """The potential a·L + (c/2)‖θ‖² over a grid on ``plane``.

    Returns (xs, ys, Z) as numpy arrays with Z.shape == (len(ys), len(xs)) and
    Z[i, j] the potential at origin + xs[j]·d1 + ys[i]·d2. ``resolution`` is points
    per axis (an int, or (nx, ny)); grid points are evaluated in chunks of
    ``chunk_size`` (None: sized by bytes, see ``Potential``) on the model's device.
    Points where the loss overflows give inf or NaN, left for the caller to mask.
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
    trainer, plane: Plane, *, extent, resolution=51, batch="train", chunk_size: int | None = None
):
    """``loss_surface`` for a Trainer: its model, gains, and training set or current batch."""
    potential = Potential.from_trainer(trainer, batch=batch, chunk_size=chunk_size)
    return potential.surface(plane, extent, resolution)
