"""Elementwise steps of a network written into a given tensor, for ``LinearGraph``.

A surface's chunks each need the same activations; ``LinearGraph`` writes them into
buffers that every chunk reuses (``Workspace``). For the activations most networks use,
and for sums, differences and products, ``writer`` gives a function that calls the ATen
kernel the module or function itself calls, with ``out=``: the numbers are those of
calling it. Any other step is called as it is and makes a new tensor.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

_aten = torch.ops.aten

# Each takes the arguments of the function it stands for (so a traced call's constant
# arguments fit), and returns None where it would not do what that function does: an
# ``inplace=True`` call changes its input, which a later step may read.


def _softplus(x, beta=1.0, threshold=20.0, *, out):
    return _aten.softplus.out(x, beta, threshold, out=out)


def _tanh(x, *, out):
    return torch.tanh(x, out=out)


def _sigmoid(x, *, out):
    return torch.sigmoid(x, out=out)


def _relu(x, inplace=False, *, out):
    return None if inplace else _aten.relu.out(x, out=out)


def _gelu(x, approximate="none", *, out):
    return _aten.gelu.out(x, approximate=approximate, out=out)


def _silu(x, inplace=False, *, out):
    return None if inplace else _aten.silu.out(x, out=out)


def _mish(x, inplace=False, *, out):
    return None if inplace else _aten.mish.out(x, out=out)


def _leaky_relu(x, negative_slope=0.01, inplace=False, *, out):
    return None if inplace else _aten.leaky_relu.out(x, negative_slope, out=out)


def _elu(x, alpha=1.0, inplace=False, *, out):
    return None if inplace else _aten.elu.out(x, alpha, out=out)


def _hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False, *, out):
    return None if inplace else _aten.hardtanh.out(x, min_val, max_val, out=out)


_FUNCTIONS = {
    F.softplus: _softplus,
    torch.tanh: _tanh,
    F.tanh: _tanh,
    torch.sigmoid: _sigmoid,
    F.sigmoid: _sigmoid,
    torch.relu: _relu,
    F.relu: _relu,
    F.gelu: _gelu,
    F.silu: _silu,
    F.mish: _mish,
    F.leaky_relu: _leaky_relu,
    F.elu: _elu,
    F.hardtanh: _hardtanh,
}

# A module's function and the arguments its ``forward`` passes, read when it runs (as
# calling the module would read them).
_MODULES = {
    nn.Softplus: lambda m: (_softplus, (m.beta, m.threshold)),
    nn.Tanh: lambda m: (_tanh, ()),
    nn.Sigmoid: lambda m: (_sigmoid, ()),
    nn.ReLU: lambda m: (_relu, (m.inplace,)),
    nn.GELU: lambda m: (_gelu, (m.approximate,)),
    nn.SiLU: lambda m: (_silu, (m.inplace,)),
    nn.Mish: lambda m: (_mish, (m.inplace,)),
    nn.LeakyReLU: lambda m: (_leaky_relu, (m.negative_slope, m.inplace)),
    nn.ELU: lambda m: (_elu, (m.alpha, m.inplace)),
    nn.Hardtanh: lambda m: (_hardtanh, (m.min_val, m.max_val, m.inplace)),
}


def _binary(name: str):
    kernel = getattr(torch, name)

    def write(a, b, *, out):
        if not isinstance(a, torch.Tensor):  # a number first: ``0.5 * h`` is ``h.mul(0.5)``
            if name == "sub":
                return None  # ``1 - h`` is another kernel (rsub)
            a, b = b, a
        return kernel(a, b, out=out)

    return write


_BINARY = {
    operator.add: _binary("add"),
    torch.add: _binary("add"),
    operator.sub: _binary("sub"),
    torch.sub: _binary("sub"),
    operator.mul: _binary("mul"),
    torch.mul: _binary("mul"),
}


def writer(op) -> tuple | None:
    """(function, leading constant arguments) that computes step ``op`` into ``out=``,
    or None where there is none. ``op`` is a module or function as ``phviz.tracing``
    records it."""
    if isinstance(op, nn.Module):
        made = _MODULES.get(type(op))
        return None if made is None else made(op)
    found = _FUNCTIONS.get(op) or _BINARY.get(op)
    return None if found is None else (found, ())


def is_binary(op) -> bool:
    """Whether ``op`` is a sum, difference or product of two operands."""
    return op in _BINARY
