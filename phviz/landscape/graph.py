"""Many θ through a network of Linear/LayerNorm layers and elementwise steps at once,
in buffers that a surface's chunks share.

``Potential`` evaluates a surface chunk by chunk; every chunk needs the same
activations, each a few MiB. Allocated anew, each is a block that the C library gets
fresh from the kernel and gives back when freed, so every chunk pays to map and zero
its pages again: in a fresh process up to half of a surface's time. A ``Workspace``
holds a few buffers that the first chunk creates and later chunks write over (matrix
products and activations with ``out=``), so a script gets the speed of a process that
keeps freed memory (``phviz.memory``) without a setting of the whole process.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from ..tracing import ELEMENTWISE, LAYERS, DirectForward, Ref
from . import kernels

if TYPE_CHECKING:
    from ..dynamics import ParameterLayout


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


def _broadcast(*shapes) -> tuple[int, ...]:
    """The shape of a result broadcast from ``shapes`` (``torch.broadcast_shapes`` imports
    sympy on its first call, seconds)."""
    size = max(len(s) for s in shapes)
    padded = [(1,) * (size - len(s)) + tuple(s) for s in shapes]
    return tuple(next((d for d in sizes if d != 1), 1) for sizes in zip(*padded, strict=True))


class Workspace:
    """Buffers that one surface's chunks share, each as large as a chunk's widest value.

    A chunk takes a free buffer for each result it writes (``take``), holds it while a
    later step needs the result (``hold``, ``release``) and lets the next chunk start
    again with all of them free (``start``): the first chunk creates as many as are
    alive at once, later chunks create none. ``scratch`` keeps smaller tensors by name
    (a chunk's θ, a normalisation's statistics). Used by one thread at a time.
    """

    def __init__(self, numel: int, dtype: torch.dtype, device: torch.device):
        self.numel, self.dtype, self.device = numel, dtype, device
        self.buffers: list[torch.Tensor] = []
        self._where: dict[int, int] = {}  # a buffer's address → its index
        self._holders: list[int] = []
        self._free: list[int] = []
        self._scratch: dict[str, torch.Tensor] = {}

    def start(self) -> None:
        """Every buffer free again: a new chunk begins."""
        self._holders = [0] * len(self.buffers)
        self._free = list(range(len(self.buffers)))[::-1]

    def take(self, shape) -> torch.Tensor | None:
        """A free buffer as a tensor of ``shape`` (None if larger than a buffer). It
        stays free until the result written into it is held."""
        size = math.prod(shape)
        if size > self.numel:
            return None
        if not self._free:
            buffer = torch.empty(self.numel, dtype=self.dtype, device=self.device)
            self._where[buffer.data_ptr()] = len(self.buffers)
            self.buffers.append(buffer)
            self._holders.append(0)
            self._free.append(len(self.buffers) - 1)
        return self.buffers[self._free[-1]][:size].view(shape)

    def hold(self, result: torch.Tensor) -> int | None:
        """Mark the buffer ``result`` lives in (if any) as needed; returns its index."""
        index = self._where.get(result.untyped_storage().data_ptr())
        if index is not None:
            self._holders[index] += 1
            if self._holders[index] == 1:
                self._free.remove(index)
        return index

    def release(self, index: int | None) -> None:
        """One result in buffer ``index`` is no longer needed."""
        if index is not None:
            self._holders[index] -= 1
            if self._holders[index] == 0:
                self._free.append(index)

    def alone(self, index: int | None) -> bool:
        """Whether buffer ``index`` holds one result only, which may then be written over."""
        return index is not None and self._holders[index] == 1

    def scratch(self, name: str, shape) -> torch.Tensor:
        """A tensor of ``shape`` in memory kept under ``name`` (grown if too small)."""
        size = math.prod(shape)
        kept = self._scratch.get(name)
        if kept is None or kept.numel() < size:
            kept = self._scratch[name] = torch.empty(size, dtype=self.dtype, device=self.device)
        return kept[:size].view(shape)


class LinearGraph:
    """Many θ through a network of layers and elementwise operations at once.

    Under vmap a Linear with a batch of weights becomes a batched matmul followed by a
    separate broadcast add of the biases, about a quarter of a small network's time.
    Here each bias is the matmul's starting value (``baddbmm``), so a chunk of θ costs
    what its forward passes cost. It serves an ``nn.Sequential`` (nested ones
    flattened) of ``nn.Linear`` and ``nn.LayerNorm`` layers and the parameter-free
    elementwise activations of ``phviz.tracing``, not an activation first, and any
    other module whose ``forward`` traces to such layers, activations and sums or
    products of results: skip connections too. The inputs are rows of features (2-D),
    and every trainable parameter is one of the layers'. Each value then has the rows
    of the data as its second axis and the chunk's θ as its first. ``usable`` also
    checks, at each call, that calling the model would run no hook.

    Results go into a ``Workspace`` (``workspace``): an activation whose input no later
    step reads overwrites it, so a chain of layers needs two buffers.
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

    def workspace(self, rows: int) -> Workspace:
        """Buffers for chunks of up to ``rows`` θ: each holds any one value of a chunk
        (rows × data points × the widest layer, or the data's features)."""
        widths = [self.inputs.shape[-1]]
        for op, *_ in self.steps or ():
            if isinstance(op, (_Linear, _LayerNorm)):
                widths.append(op.shape[0])
        numel = rows * self.inputs.shape[0] * max(widths)
        return Workspace(numel, self.inputs.dtype, self.inputs.device)

    def __call__(self, thetas: torch.Tensor, workspace: Workspace | None = None) -> torch.Tensor:
        """The model's outputs (rows, points, outputs) at each row of ``thetas``,
        written into ``workspace`` (one of its buffers: read it before the next call)."""
        tensors = thetas.split(self.layout.numels, dim=1)
        n = len(thetas)
        space = self.workspace(n) if workspace is None else workspace
        space.start()
        results, held = {-1: self.inputs}, {}
        h = self.inputs
        for i, (op, args, kwargs, done) in enumerate(self.steps):
            given = [results[a] if type(a) is Ref else a for a in args]
            # the inputs that no later step reads, alone in their buffers: writable
            spare = [results[r] for r in done if space.alone(held.get(r))]
            if isinstance(op, _Linear):
                h = self._linear(op, given[0], tensors, n, space)
            elif isinstance(op, _LayerNorm):
                h = self._layer_norm(op, given[0], tensors, n, space)
            else:
                kw = {k: results[v] if type(v) is Ref else v for k, v in kwargs.items()}
                h = self._elementwise(op, given, kw, spare, space)
            results[i], held[i] = h, space.hold(h)
            for ref in done:
                space.release(held.pop(ref))
                del results[ref]
        return h if h.dim() == 3 else h.expand(n, *h.shape)

    @staticmethod
    def _linear(op: _Linear, h, tensors, n: int, space: Workspace) -> torch.Tensor:
        if h.dim() == 2:  # the data, or what came of it alone
            h = h.expand(n, *h.shape)
        weight_t = tensors[op.weight].view(-1, *op.shape).transpose(1, 2)
        out = space.take((n, h.shape[1], op.shape[0]))
        into = {} if out is None else {"out": out}
        if op.bias is None:
            return torch.bmm(h, weight_t, **into)
        return torch.baddbmm(tensors[op.bias].unsqueeze(1), h, weight_t, **into)

    @staticmethod
    def _layer_norm(op: _LayerNorm, h, tensors, n: int, space: Workspace) -> torch.Tensor:
        scale = None if op.weight is None else tensors[op.weight].unsqueeze(1)
        shift = None if op.bias is None else tensors[op.bias].unsqueeze(1)
        normed = space.take(h.shape) if h.dim() == 3 else None
        if normed is None:  # the data's own normalisation (no θ in it yet) is data-sized
            normed = torch.nn.functional.layer_norm(h, op.shape, eps=op.eps)
        else:  # the kernel F.layer_norm calls, with its statistics kept too
            stats = (*h.shape[:-1], 1)
            torch.ops.aten.native_layer_norm.out(
                h, op.shape, None, None, op.eps,
                out0=normed, out1=space.scratch("mean", stats), out2=space.scratch("rstd", stats),
            )  # fmt: skip
        if scale is None and shift is None:
            return normed
        shape = _broadcast(normed.shape, (n, 1, op.shape[0]))
        out = normed if normed.shape == shape and normed.dim() == 3 else space.take(shape)
        into = {} if out is None else {"out": out}
        if scale is not None and shift is not None:
            return torch.addcmul(shift, normed, scale, **into)  # one pass, not two
        if scale is not None:
            return torch.mul(normed, scale, **into)
        return torch.add(normed, shift, **into)

    @staticmethod
    def _elementwise(op, given: list, kw: dict, spare: list, space: Workspace):
        """``op(*given, **kw)``, into a buffer where ``kernels`` has a writer for it."""
        found = kernels.writer(op)
        if kernels.is_binary(op):  # two operands, a number or a tensor each
            operands = [g for g in given if isinstance(g, torch.Tensor)]
            dtype = torch.result_type(*given) if operands else None
        else:  # one tensor, then constant arguments
            operands, dtype = given[:1], given[0].dtype
        if found is None or dtype != space.dtype:
            return op(*given, **kw)
        shape = _broadcast(*(t.shape for t in operands))
        # an input that no later step reads, of the result's shape, is written over
        out = next((t for t in spare if t.shape == shape and any(t is g for g in operands)), None)
        out = space.take(shape) if out is None else out
        if out is not None:
            function, leading = found
            result = function(*given[:1], *leading, *given[1:], **kw, out=out)
            if result is not None:
                return result
        return op(*given, **kw)
