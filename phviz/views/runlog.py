"""The run's own records, kept for export: bounded, evenly thinned, reset with the run.

The live ``History`` keeps columns for the plots; a file for notes needs the records
themselves (every field, and θ for an animation). ``RunLog`` keeps every
``stride``-th record and, when full, drops every other one and doubles the stride,
so a long run stays covered evenly within a fixed size. No GUI code.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class RunLog:
    """At most ``capacity`` records of one run, evenly spaced over it.

    ``capacity`` is odd so that halving keeps the first record (t = 0); the last
    record seen is always kept as well. ``tracked`` names the coordinates of the
    records' ``theta_sample`` (None once they changed within the run).
    """

    def __init__(self, capacity: int = 2001):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 3:
            raise ValueError(f"Invalid capacity: {capacity!r} (must be a whole number >= 3)")
        self.capacity = capacity if capacity % 2 else capacity - 1
        self.clear()

    def clear(self, tracked=None) -> None:
        """Forget the run (a new run or a reset); ``tracked`` as the new run has them."""
        self._kept: list = []
        self._last = None  # the newest record, kept or not
        self._since = 0
        self.stride = 1
        self.tracked = None if tracked is None else np.asarray(tracked).copy()

    def extend(self, records: Iterable) -> None:
        for record in records:
            self._last = record
            self._since += 1
            if self._kept and self._since < self.stride:
                continue
            if len(self._kept) == self.capacity:
                self._kept = self._kept[::2]
                self.stride *= 2
                if self._since < self.stride:
                    continue
            self._kept.append(record)
            self._since = 0

    def retracked(self) -> None:
        """The tracked coordinates changed: the samples no longer share their names."""
        self.tracked = None

    @property
    def records(self) -> list:
        """The kept records in order, the newest record last."""
        if self._last is not None and (not self._kept or self._kept[-1] is not self._last):
            return [*self._kept, self._last]
        return list(self._kept)

    def __len__(self) -> int:
        return len(self.records)
