"""Names of single parameters: a flat index in θ from a friendly key, and back."""

from __future__ import annotations

import re

import numpy as np

from ..dynamics import ParameterLayout
from .inputs import layout_of

_SHORT = re.compile(r"^([wb])(\d)(\d)?$")
_INDEXED = re.compile(r"^(.+?)\s*\[([\d,\s]+)\]$")


def parameter_index(layout_or_model, key) -> int:
    """The flat index in θ of one scalar parameter, named in a friendly way.

    ``key`` may be a flat index (``5``), a name with a 0-based index as in
    ``model.named_parameters()`` (``"0.weight[1, 0]"``, ``"2.bias[3]"``), a pair
    (``("0.weight", (1, 0))``), or the paper's short form for the first layer, 1-based:
    ``"w12"`` is row 1, column 2 of the first weight matrix and ``"b2"`` the second
    entry of the first bias.
    """
    layout = layout_of(layout_or_model)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= key < layout.size:
            raise ValueError(f"Invalid parameter index: {key} (θ has {layout.size} entries)")
        return int(key)
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        name, index = key
        return _named_index(layout, name, index if isinstance(index, tuple) else (index,), key)
    if not isinstance(key, str):
        raise TypeError(f"Invalid parameter: {key!r} (give an index, a name or a pair)")
    text = key.strip()
    short = _SHORT.match(text)
    if short:
        kind, a, b = short.groups()
        suffix = "weight" if kind == "w" else "bias"
        ndim = 2 if kind == "w" else 1
        first = next(
            (
                n
                for n, s in zip(layout.names, layout.shapes, strict=True)
                if n.rsplit(".", 1)[-1] == suffix and len(s) == ndim
            ),
            None,
        )
        if first is None or (kind == "w") != (b is not None):
            raise ValueError(f"Invalid parameter: {key!r} (the model has no such {suffix})")
        index = (int(a) - 1, int(b) - 1) if b is not None else (int(a) - 1,)
        return _named_index(layout, first, index, key)
    indexed = _INDEXED.match(text)
    if indexed:
        name, inside = indexed.groups()
        index = tuple(int(s) for s in inside.replace(" ", "").split(",") if s)
        return _named_index(layout, name, index, key)
    if text in layout.names:
        return _named_index(layout, text, (), key)
    raise ValueError(
        f"Invalid parameter: {key!r} (use a flat index, 'name[i, j]' with a name from "
        f"{', '.join(layout.names)}, or 'w11'/'b1' for the first layer)"
    )


def _named_index(layout: ParameterLayout, name: str, index: tuple, key) -> int:
    if name not in layout.names:
        raise ValueError(
            f"Invalid parameter: {key!r} (no parameter {name!r}; names are "
            f"{', '.join(layout.names)})"
        )
    k = layout.names.index(name)
    shape, numel = tuple(layout.shapes[k]), layout.numels[k]
    if index == () and numel == 1:
        return layout.offsets[k]
    if len(index) == 1 and len(shape) != 1:
        flat = index[0]  # an index into the flattened tensor
        if not 0 <= flat < numel:
            raise ValueError(f"Invalid parameter: {key!r} ({name} has {numel} entries)")
        return layout.offsets[k] + flat
    if len(index) != len(shape) or any(not 0 <= i < s for i, s in zip(index, shape, strict=True)):
        raise ValueError(f"Invalid parameter: {key!r} ({name} has shape {shape})")
    return layout.offsets[k] + int(np.ravel_multi_index(index, shape))


def parameter_label(layout_or_model, index: int) -> str:
    """The name of flat index ``index`` as ``"0.weight[1, 0]"`` (0-based)."""
    layout = layout_of(layout_or_model)
    if not 0 <= index < layout.size:
        raise ValueError(f"Invalid parameter index: {index} (θ has {layout.size} entries)")
    k = int(np.searchsorted(layout.offsets, index, side="right")) - 1
    within = np.unravel_index(index - layout.offsets[k], tuple(layout.shapes[k]))
    return f"{layout.names[k]}[{', '.join(str(int(i)) for i in within)}]"
