"""The potential a·L(θ) + (c/2)‖θ‖² for many θ at once, and its surfaces over planes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from .graph import LinearGraph, Workspace
from .grid import grid_points
from .inputs import as_matrix, check_chunk
from .planes import Plane


class Potential:
    """V(θ) = a·L(θ) + (c/2)·θᵀθ on fixed data, for many θ at once.

    Rows of θ are evaluated ``chunk_size`` at a time so memory stays bounded, on the
    model's device and in its dtype (None: as many as keep a chunk's widest layer
    output, over every data point, within 16 MiB, and at most 256). A network of
    Linear layers, activations and skip connections runs as batched matmuls
    (``LinearGraph``), its chunks writing into the same buffers one after another; any
    other module with ``torch.func.vmap`` over ``functional_call`` (with the model's
    buffers). Subnormal numbers are flushed on the calling thread while it evaluates
    (``flushed_subnormals``).
    ``batched=False`` evaluates row by row in a Python loop (a reference, and a way out
    for models vmap cannot handle); ``graph=False`` takes vmap even for a network the
    batched matmuls could run. ``route`` says which the next evaluation takes.
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
        graph: bool = True,
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
        if not graph:
            self._graph.steps = None
        self._graph_loss = vmap(loss_fn, in_dims=(0, None))

    @property
    def route(self) -> str:
        """How the next evaluation runs: "graph" (batched matmuls, for chains and graphs
        of layers that run no hook now), "vmap" or "loop" (``batched=False``)."""
        if not self.batched:
            return "loop"
        return "graph" if self._graph.usable else "vmap"

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
    def evaluate_rows(self, thetas: torch.Tensor, workspace: Workspace | None = None):
        """V at each row of a (N, n) tensor already on the model's device and dtype.

        ``workspace`` (from ``workspace``): buffers that successive calls reuse, as a
        surface's chunks do, instead of new memory for each.
        """
        if self.batched and self._graph.usable:
            losses = self._graph_loss(self._graph(thetas, workspace), self.targets)
        elif self.batched:
            losses = self._batched_loss(thetas)
        else:
            losses = torch.stack([self._loss(row) for row in thetas])
        return potential_energy(losses, thetas, self.potential_gain, self.weight_decay)

    def __call__(self, thetas) -> np.ndarray:
        """V at each parameter vector (rows of an (N, n) array, or one vector)."""
        rows = as_matrix(thetas, self.layout.size)
        space = self.workspace(min(len(rows), self.chunk_size))
        with flushed_subnormals():
            out = [
                self.evaluate_rows(chunk.to(device=self.device, dtype=self.dtype), space)
                for chunk in rows.split(self.chunk_size)
            ]
        return torch.cat(out).double().cpu().numpy()

    def on_plane(self, plane: Plane, xy) -> np.ndarray:
        """V at plane coordinates ``xy`` (N, 2), the points built chunk by chunk."""
        plane = plane.to(self.device, self.dtype)
        xy = torch.as_tensor(np.asarray(xy, dtype=np.float64)).reshape(-1, 2)
        space = self.workspace(min(len(xy), self.chunk_size))
        out = []
        with flushed_subnormals():
            for chunk in xy.split(self.chunk_size):
                shape = (len(chunk), self.layout.size)
                thetas = plane.points(
                    chunk, out=space.scratch("theta", shape), scratch=space.scratch("step", shape)
                )
                out.append(self.evaluate_rows(thetas, space))
        return torch.cat(out).double().cpu().numpy()

    def workspace(self, rows: int) -> Workspace:
        """Buffers for ``evaluate_rows`` on chunks of up to ``rows`` θ (see ``LinearGraph``)."""
        if self._graph.steps is not None:
            return self._graph.workspace(rows)
        return Workspace(0, self.dtype, self.device)  # for the chunks' θ alone

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


# Python's floats run on the same unit, under the same mode, as torch's CPU kernels on
# this thread: the smallest normal number halved is 0 exactly when it flushes.
_SMALLEST_NORMAL = sys.float_info.min


@contextmanager
def flushed_subnormals() -> Iterator[None]:
    """Numbers below the smallest normal one count as 0 on this thread, for the block.

    A softplus (or sigmoid, SiLU, GELU) far on its flat side returns subnormal numbers,
    which x86 cores compute with at a fraction of their speed; on a plane that reaches
    far from the weights a surface spends much of its time there. Flushed, those values
    become 0, which changes a potential only where everything else it sums is as small.
    The mode is the calling thread's own (``torch.set_flush_denormal``), so it is set for
    the block and put back after, never left changed for the caller; threads of torch's
    pool keep theirs, so with several threads only the caller's share gains.
    """
    flushing = _SMALLEST_NORMAL * 0.5 == 0.0  # the caller's own mode, to leave as it was
    changed = not flushing and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


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


class PathProfile(NamedTuple):
    """A path seen on a plane: where it projects, how far off it is, and two potentials.

    ``actual`` is V at each θ(t); ``on_plane`` is the surface's value at its
    projection. Where they differ, the picture misleads: the path is off the plane.
    ``t`` is the time of each point where the caller knows it (a live window's path),
    else None.
    """

    xy: np.ndarray
    off_plane: np.ndarray
    actual: np.ndarray
    on_plane: np.ndarray
    t: np.ndarray | None = None


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
