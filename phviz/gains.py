"""The gains of the dynamics, checked in one place: damping B, inertia M, potential
gain a and weight decay c.

``TrainingConfig``'s gain parameters, the system's ``set_gains`` and the gain map all
check a value through ``check_gain_value``, so a setting the config accepts is one the
engine accepts, with the same message when it is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import param
import torch

from .parameters import ParameterLayout

Gain = float | Mapping[str, float] | torch.Tensor

# name → (lower bound, whether the bound itself is allowed, what the rule says)
RULES = {
    "damping": (0.0, True, ">= 0"),
    "inertia": (0.0, False, "> 0"),
    "potential_gain": (0.0, False, "> 0"),
    "weight_decay": (0.0, True, ">= 0"),
}
GAINS = tuple(RULES)
# What a per-layer mapping leaves for the layers it does not name, without a gain in force.
DEFAULTS = {"damping": 1.0, "inertia": 1.0, "potential_gain": 1.0, "weight_decay": 0.0}


def check_gain_value(name: str, value, where: str = "") -> float:
    """``value`` as a float, or a ``ValueError``/``TypeError`` naming the gain and value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}{where}: {value!r} (expected a number)")
    value = float(value)
    bound, inclusive, meaning = RULES[name]
    if not math.isfinite(value) or value < bound or (value == bound and not inclusive):
        raise ValueError(f"Invalid {name}{where}: {value!r} (must be finite and {meaning})")
    return value


def resolve_gain(name: str, value: Gain, layout: ParameterLayout, like: torch.Tensor, current=None):
    """A gain as a float (scalar) or as a tensor with one entry per scalar parameter.

    ``value`` is a number, a mapping from parameter name (or module prefix such as
    ``"0"`` for ``"0.weight"`` and ``"0.bias"``) to number, or a 1-D tensor with
    ``layout.size`` entries. Parameters a mapping does not name keep ``current``, the
    gain in force (a float or a per-parameter tensor; by default ``DEFAULTS[name]``).
    """
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return check_gain_value(name, value.item())
        if value.dim() != 1 or value.numel() != layout.size:
            raise ValueError(
                f"Invalid {name}: a tensor gain needs shape ({layout.size},), "
                f"one entry per scalar parameter, got {tuple(value.shape)}"
            )
        bound, inclusive, meaning = RULES[name]
        bad = ~torch.isfinite(value) | (value < bound if inclusive else value <= bound)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(
                f"Invalid {name} at entry {i}: {value[i].item()!r} (must be finite and {meaning})"
            )
        return value.detach().to(device=like.device, dtype=like.dtype)
    if isinstance(value, Mapping):
        current = DEFAULTS[name] if current is None else current
        return layout.expand(check_gain_value, name, value, like, current)
    return check_gain_value(name, value)


class GainParameter(param.Number):
    """A ``param.Number`` for one gain, checked by ``check_gain_value``: the config's
    bounds and messages are the engine's own."""

    __slots__ = ["gain"]

    def __init__(self, default, *, gain: str, **params):
        bound, inclusive, _ = RULES[gain]
        self.gain = gain
        super().__init__(
            default, bounds=(bound, None), inclusive_bounds=(inclusive, True), **params
        )

    def _validate_value(self, value, allow_None):
        if value is None and allow_None:
            return
        check_gain_value(self.gain, value)


def as_array(gain):
    """A gain as NumPy sees it: floats stay floats, tensors become arrays."""
    return gain.detach().cpu().numpy() if isinstance(gain, torch.Tensor) else gain


def is_zero(gain) -> bool:
    return not isinstance(gain, (np.ndarray, torch.Tensor)) and gain == 0.0
