"""A run's history for live plots: records → columns, decimated to a bounded size.

A run of an hour produces tens of thousands of records; the plots need at most a
few thousand points. ``History`` keeps every ``stride``-th record and, when full,
drops every other row and doubles the stride, so its memory is bounded while the
whole run stays covered at an even spacing. No GUI code: the explorer streams the
rows it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..training import Record

# Columns every row has; the energy plot reads these.
SCALARS = (
    "t",
    "interval",
    "epoch",
    "train_loss",
    "test_loss",
    "accuracy",
    "hamiltonian",
    "kinetic",
    "potential",
    "dissipated",
    "supplied",
    "residual",
    "switch",
    "gain_jumps",
    "nfe",
)
# Quantities drawn on a log axis: zero or negative values become NaN (a gap).
LOG_COLUMNS = (
    "hamiltonian",
    "kinetic",
    "potential",
    "dissipated",
    "supplied",
    "residual",
    "switch",
    "gain_jumps",
)


def theta_column(i: int) -> str:
    return f"theta_{i}"


def momentum_column(i: int) -> str:
    return f"p_{i}"


def column_names(n_tracked: int) -> list[str]:
    """Every column of a history tracking ``n_tracked`` coordinates."""
    thetas = [theta_column(k) for k in range(n_tracked)]
    return list(SCALARS) + thetas + [momentum_column(k) for k in range(n_tracked)]


def record_row(record: Record, switched: bool | None = None) -> dict[str, float]:
    """One record's scalars as a row; ``switch`` is H where the batch switched, else NaN."""
    switched = record.switched if switched is None else switched
    row = {
        "t": record.t,
        "interval": float(record.interval),
        "epoch": record.epoch,
        "train_loss": record.train_loss,
        "test_loss": record.test_loss,
        "accuracy": record.accuracy,
        "hamiltonian": record.hamiltonian,
        "kinetic": record.kinetic,
        "potential": record.potential,
        "dissipated": record.dissipated,
        "supplied": record.supplied,  # ∫vᵀu dt: kicks step it up
        "residual": abs(record.ledger_residual),
        "switch": record.hamiltonian if switched else math.nan,
        # |Σ jumps of H from changes of a, c or M|: booked in the ledger, not dissipated
        "gain_jumps": abs(record.gain_jumps),
        "nfe": float(record.nfe),
    }
    for key in LOG_COLUMNS:
        if not row[key] > 0.0:  # also catches NaN
            row[key] = math.nan
    return row


@dataclass
class Update:
    """What changed after ``History.extend``: new rows, or a rebuilt whole."""

    rows: dict[str, np.ndarray]  # the admitted records as columns (maybe empty)
    rebuilt: bool  # the history was decimated: re-send ``History.columns()`` whole

    def __len__(self) -> int:
        return len(self.rows["t"])


class History:
    """Bounded, evenly decimated columns of a run's records.

    ``capacity`` is odd so that halving keeps both the first row (t = 0) and the last.
    Besides the scalars of ``SCALARS`` it keeps θ and p at the tracked coordinates
    (columns ``theta_k``, ``p_k``) and the whole θ of every kept row (for the
    landscape's trail and plane).
    """

    def __init__(self, dim: int, n_tracked: int, capacity: int = 2001):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 3:
            raise ValueError(f"Invalid capacity: {capacity!r} (must be a whole number >= 3)")
        if capacity % 2 == 0:
            raise ValueError(f"Invalid capacity: {capacity} (must be odd, so halving keeps t = 0)")
        self.capacity = capacity
        self.dim = dim
        self.n_tracked = n_tracked
        self.names = column_names(n_tracked)
        self._table = np.full((capacity, len(self.names)), np.nan)
        self._theta = np.zeros((capacity, dim), dtype=np.float32)
        self.clear()

    def clear(self) -> None:
        self.size = 0
        self.stride = 1
        self._since = 0  # records seen since the last admitted one
        self._switched = False  # a switch among the records skipped since then
        self.last: Record | None = None

    # -------------------------------------------------------------- reading
    def columns(self) -> dict[str, np.ndarray]:
        """The kept rows as columns (copies)."""
        return self._as_columns(self._table[: self.size])

    @property
    def thetas(self) -> np.ndarray:
        """Whole θ of the kept rows, shape (size, dim) (a view; do not keep it)."""
        return self._theta[: self.size]

    @property
    def times(self) -> np.ndarray:
        return self._table[: self.size, 0].copy()

    def empty_columns(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(0) for name in self.names}

    def _as_columns(self, block: np.ndarray) -> dict[str, np.ndarray]:
        return {name: block[:, j].copy() for j, name in enumerate(self.names)}

    # -------------------------------------------------------------- writing
    def extend(self, records: list[Record]) -> Update:
        """Take new records; returns the rows admitted (or that all must be re-sent)."""
        start, rebuilt = self.size, False
        for record in records:
            self.last = record
            self._switched |= bool(record.switched)
            self._since += 1
            if self.size and self._since < self.stride:
                continue
            if self.size == self.capacity:
                self._halve()
                rebuilt = True
                start = self.size
                if self._since < self.stride:
                    continue
            self._put(record)
        if rebuilt:
            return Update(self.empty_columns(), True)
        return Update(self._as_columns(self._table[start : self.size]), False)

    def _put(self, record: Record) -> None:
        row = record_row(record, self._switched)
        values = [row[name] for name in SCALARS]
        values.extend(_padded(record.theta_sample, self.n_tracked))
        values.extend(_padded(record.p_sample, self.n_tracked))
        self._table[self.size, : len(values)] = values
        self._theta[self.size] = record.theta
        self.size += 1
        self._since = 0
        self._switched = False

    def _halve(self) -> None:
        """Keep rows 0, 2, 4, …, capacity − 1 and double the stride."""
        keep = np.arange(0, self.size, 2)
        n = len(keep)
        self._table[:n] = self._table[keep]
        self._theta[:n] = self._theta[keep]
        self._table[n:] = np.nan
        self.size = n
        self.stride *= 2

    def retrack(self, tracked: np.ndarray) -> None:
        """The tracked coordinates changed: θ columns are rebuilt from the stored θ;
        the momenta of the past are unknown and become NaN."""
        tracked = np.asarray(tracked)
        k = min(len(tracked), self.n_tracked)
        first_theta = len(SCALARS)
        first_p = first_theta + self.n_tracked
        self._table[:, first_theta:first_p] = np.nan
        self._table[: self.size, first_theta : first_theta + k] = self._theta[
            : self.size, tracked[:k]
        ]
        self._table[:, first_p:] = np.nan


def _padded(values, n: int) -> np.ndarray:
    """The first ``n`` values, NaN where there are fewer (a model with few parameters)."""
    out = np.full(n, np.nan)
    values = np.asarray(values, dtype=float)[:n]
    out[: len(values)] = values
    return out
