"""The batch schedule: which training points the system holds, interval after interval."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import Dataset
from ..dynamics import PortHamiltonianSystem


class BatchSchedule:
    """Batches of ``size`` points in epochs, reshuffled each epoch when ``shuffle``.

    A ``size`` of 0 or less, or of the whole training set, is full batch: the system
    holds the training set itself. ``seed`` seeds the shuffles, so a schedule built
    again from the same arguments holds the same batches.
    """

    def __init__(
        self,
        dataset: Dataset,
        system: PortHamiltonianSystem,
        size: int,
        *,
        shuffle: bool,
        seed: int,
    ):
        self.dataset, self.system = dataset, system
        n = len(dataset.x_train)
        self.size = n if size <= 0 or size >= n else size
        self.full = self.size == n
        self.per_epoch = math.ceil(n / self.size)
        self.shuffle = shuffle
        self._generator = torch.Generator().manual_seed(seed)
        self.epoch, self.index = 0, 0  # the epoch, and the batch held within it
        self._permute()
        self.hold()

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
        self._arrays = None

    def _window(self) -> slice:
        return slice(self.index * self.size, (self.index + 1) * self.size)

    def hold(self) -> None:
        """Give the system the current batch."""
        if self.full:
            self.system.set_batch(self.dataset.x_train, self.dataset.y_train)
        else:
            window = self._window()
            self.system.set_batch(self._inputs[window], self._targets[window])

    def next(self, hold: bool = True) -> None:
        """Move on to the next batch (the next epoch's first after the last)."""
        self.index += 1
        if self.index >= self.per_epoch:
            self.index = 0
            self.epoch += 1
            self._permute()
        if hold:
            self.hold()

    def array_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The current batch as ``array_loss_and_gradient`` takes it."""
        if self._arrays is None:
            targets = self.system.array_targets(self._targets)
            self._arrays = (self._inputs.numpy(), targets)
        inputs, targets = self._arrays
        window = self._window()
        return inputs[window], targets[window]

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
        """Back to a ``snapshot``, the system holding that batch again."""
        self.epoch, self.index, self._inputs, self._targets, self._arrays = state
        self.hold()
