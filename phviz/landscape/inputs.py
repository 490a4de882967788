"""Parameter vectors and models as the landscape functions take them, checked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..dynamics import ParameterLayout


def layout_of(obj) -> ParameterLayout:
    """A ParameterLayout from a model, a layout, or anything with ``.layout``."""
    if isinstance(obj, ParameterLayout):
        return obj
    if isinstance(obj, torch.nn.Module):
        return ParameterLayout(obj)
    layout = getattr(obj, "layout", None)
    if isinstance(layout, ParameterLayout):
        return layout
    raise TypeError(
        f"Expected a model, a ParameterLayout or a system with .layout, got {type(obj).__name__}"
    )


def _as_vector(v) -> torch.Tensor:
    """One parameter vector, flat, as a tensor on the CPU."""
    t = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
    return t.reshape(-1)


def as_matrix(thetas, n: int | None = None, *, name: str = "thetas") -> torch.Tensor:
    """Parameter vectors as a 2-D float tensor (one row each); a single vector is one row."""
    if isinstance(thetas, torch.Tensor):
        t = thetas.detach()
    elif isinstance(thetas, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(thetas))
    elif isinstance(thetas, Sequence) and len(thetas) and not np.isscalar(thetas[0]):
        t = torch.stack([_as_vector(v) for v in thetas])
    else:
        t = torch.as_tensor(np.asarray(thetas))
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[0] == 0:
        raise ValueError(
            f"Invalid {name}: expected one parameter vector or a (points, parameters) array, "
            f"got shape {tuple(t.shape)}"
        )
    if n is not None and t.shape[1] != n:
        raise ValueError(
            f"Invalid {name}: vectors of length {t.shape[1]}, expected length {n} "
            "(one entry per scalar parameter)"
        )
    if not t.is_floating_point():
        t = t.double()
    return t


def check_chunk(chunk_size) -> int:
    """``chunk_size``, the rows evaluated at once, as an int of at least 1."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"Invalid chunk_size: {chunk_size!r} (expected a whole number)")
    if chunk_size < 1:
        raise ValueError(f"Invalid chunk_size: {chunk_size!r} (must be >= 1)")
    return int(chunk_size)
