"""The batch schedule: which training points a run holds, interval after interval.

One schedule serves a single run and a gain map's ensemble alike, so both see the same
batches in the same order.
"""

from __future__ import annotations

import math

import torch

from ..data import Dataset


class BatchSchedule:
    """Batches of ``size`` points in epochs, reshuffled each epoch when ``shuffle``.

    A ``size`` of 0 or less, or of the whole training set, is full batch: the run holds
    the training set itself. ``seed`` seeds the shuffles, so a schedule built again
    from the same arguments holds the same batches.
    """

    def __init__(self, dataset: Dataset, size: int, *, shuffle: bool, seed: int):
        self.dataset = dataset
        n = len(dataset.x_train)
        self.size = n if size <= 0 or size >= n else size
        self.full = self.size == n
        self.per_epoch = math.ceil(n / self.size)
        self.shuffle = shuffle
        self._generator = torch.Generator().manual_seed(seed)
        self.epoch, self.index = 0, 0  # the epoch, and the batch held within it
        self._permute()

    @classmethod
    def of(cls, config, dataset: Dataset) -> BatchSchedule:
        """The schedule a ``TrainingConfig`` describes on ``dataset``."""
        return cls(dataset, config.batch_size, shuffle=config.shuffle, seed=config.data_seed + 1)

    def _permute(self) -> None:
        """The epoch's points in its order, once: each batch is then a slice (a view)."""
        ds = self.dataset
        n = len(ds.x_train)
        if self.full or not self.shuffle:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=self._generator)
        index = order.to(ds.x_train.device)
        self._inputs, self._targets = ds.x_train[index], ds.y_train[index]
        self._arrays = None  # the epoch in a route's NumPy form, made when first asked

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and targets of the batch held now."""
        if self.full:
            return self.dataset.x_train, self.dataset.y_train
        window = slice(self.index * self.size, (self.index + 1) * self.size)
        return self._inputs[window], self._targets[window]

    def hold(self, system) -> None:
        """Give ``system`` (a system or an ensemble) the batch held now. A route that
        steps in NumPy gets the epoch converted once and each batch as a slice of it."""
        inputs, targets = self.batch()
        route = getattr(system, "route", None)
        if self.full or not hasattr(route, "array_batch"):
            system.set_batch(inputs, targets)
            return
        if self._arrays is None:
            self._arrays = route.array_batch(self._inputs, self._targets)
        window = slice(self.index * self.size, (self.index + 1) * self.size)
        system.set_batch(inputs, targets, arrays=tuple(a[window] for a in self._arrays))

    def next(self) -> None:
        """Move on to the next batch (the next epoch's first after the last)."""
        self.index += 1
        if self.index >= self.per_epoch:
            self.index = 0
            self.epoch += 1
            self._permute()

    def epochs(self, interval: int) -> float:
        """Passes over the training set after ``interval`` intervals; in full batch each
        interval is one pass."""
        if self.full or interval == 0:
            return float(interval)
        return self.epoch + (self.index + 1) / self.per_epoch

    def snapshot(self):
        """Where the schedule stands, for ``restore``."""
        return self.epoch, self.index, self._inputs, self._targets, self._arrays

    def restore(self, state) -> None:
        """Back to a ``snapshot``."""
        self.epoch, self.index, self._inputs, self._targets, self._arrays = state
