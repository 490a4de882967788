"""What one live session may use on a shared server, and the sizes that follow from it.

Whoever serves the explorer sets the limits (environment variables, or
``panel serve apps/explorer.py --args --max-parameters 50000 ...``); a setting over a
limit is refused with a message naming it, before anything is allocated. Memory
that grows with the model (the stored history of θ, the landscape's batched
evaluation) is sized from the byte budget instead of a fixed count.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from .models import parse_hidden

# Bytes a landscape grid point costs, per number the forward pass keeps alive for it:
# inputs, pre-activations and activations of every layer, and the copy of θ.
_LIVE_COPIES = 3


@dataclass(frozen=True)
class Budget:
    """Per-session limits of one server (``None`` for ``max_sessions``: no limit).

    A gain map integrates all its cells at once, each a copy of the model's θ and p:
    ``max_map_cells`` bounds the cells, ``max_map_numbers`` the cells × parameters."""

    max_parameters: int = 200_000
    max_samples: int = 20_000
    max_resolution: int = 61
    memory_mb: float = 256.0
    max_sessions: int | None = None
    max_map_cells: int = 64
    max_map_numbers: int = 2_000_000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "max_sessions":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
                raise ValueError(f"Invalid {f.name}: {value!r} (must be a number >= 1)")

    # ------------------------------------------------------------ set-up
    @classmethod
    def from_settings(
        cls, argv: Sequence[str] = (), environ: Mapping[str, str] | None = None
    ) -> Budget:
        """Limits from ``argv`` (``--max-parameters N`` …), else ``PHVIZ_MAX_PARAMETERS``
        … in ``environ``, else the defaults."""
        environ = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(prog="apps/explorer.py", add_help=False)
        for f in fields(cls):
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None)
        args, _ = parser.parse_known_args(list(argv))
        values = {}
        for f in fields(cls):
            text = getattr(args, f.name)
            if text is None:
                text = environ.get("PHVIZ_" + f.name.upper())
            if text is None:
                continue
            try:
                values[f.name] = float(text) if f.name == "memory_mb" else int(text)
            except ValueError:
                raise ValueError(f"Invalid {f.name}: {text!r} (expected a number)") from None
        return cls(**values)

    # ------------------------------------------------------------ checks
    def check_data(self, n_samples: int | None) -> None:
        if n_samples is not None and n_samples > self.max_samples:
            raise ValueError(
                f"Too many points: {n_samples:,} (at most {self.max_samples:,} points on "
                "this server)"
            )

    def check_model(self, architecture: str, hidden, input_dim: int, output_dim: int) -> int:
        """The parameter count of the model the settings describe, or a ValueError
        naming the limit; counted from the widths, before anything is built."""
        n = parameter_count(architecture, hidden, input_dim, output_dim)
        if n > self.max_parameters:
            raise ValueError(
                f"The model would have {n:,} parameters: at most {self.max_parameters:,} "
                "parameters on this server. Choose smaller hidden widths"
            )
        return n

    def check_map(self, cells: int, parameters: int) -> None:
        """A gain map of ``cells`` runs of a model with ``parameters`` parameters, or a
        ValueError naming the limit it passes."""
        if cells > self.max_map_cells:
            raise ValueError(
                f"Too many cells: {cells:,} (at most {self.max_map_cells:,} cells in a gain "
                "map on this server). Choose fewer values"
            )
        if cells * parameters > self.max_map_numbers:
            raise ValueError(
                f"The map would hold {cells:,} cells × {parameters:,} parameters = "
                f"{cells * parameters:,} numbers: at most {self.max_map_numbers:,} cells × "
                "parameters on this server. Choose fewer cells or a smaller model"
            )

    # ------------------------------------------------------------ sizes
    @property
    def memory_bytes(self) -> int:
        return int(self.memory_mb * 2**20)

    def history_rows(self, dim: int, wanted: int) -> int:
        """Rows of a history that keeps the whole θ (float32) per row: half the budget,
        odd (so halving keeps t = 0), at least 101."""
        rows = int(self.memory_bytes / 2 / (4 * max(1, dim)))
        rows = max(101, min(wanted, rows))
        return rows if rows % 2 else rows - 1

    def chunk_points(self, dim: int, n_points: int, widths: Sequence[int], itemsize: int = 4):
        """Landscape grid points evaluated at once within a quarter of the budget."""
        per_point = itemsize * _LIVE_COPIES * (dim + n_points * (sum(widths) + widths[-1]))
        return int(max(1, min(4096, self.memory_bytes / 4 // max(1, per_point))))

    def resolution(self, wanted: int) -> int:
        return int(min(wanted, self.max_resolution))


def parameter_count(architecture: str, hidden, input_dim: int, output_dim: int) -> int:
    """Weights and biases of a linear model or an MLP with the given hidden widths."""
    sizes = [input_dim, output_dim]
    if architecture == "mlp":
        sizes = [input_dim, *parse_hidden(hidden), output_dim]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
