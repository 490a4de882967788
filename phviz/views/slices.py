"""The worker's side of one explorer session: the trainer and pictures its slices own.

``SessionSlices`` holds what only the session's slices on the worker pool may touch:
the ``Trainer`` (its config and tracked coordinates included) and the ``Pictures``.
Every method here runs inside one of those slices, one at a time; what the server's
thread needs comes out as immutable objects: records, notices and ``RunInfo`` posted
to the session's outbox, and the pictures' ``Shown``. No GUI code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..budget import Budget
from ..config import make_config
from ..data import Dataset
from ..training import Record, Trainer, TrainingError
from ..training.run import dataset_for
from .picturejob import Pictures
from .pictures import task_kind


@dataclass(frozen=True)
class Notice:
    """The banner's one message: ``kind`` is 'info', 'warning' or 'danger'."""

    text: str
    kind: str = "info"


@dataclass(frozen=True)
class RunInfo:
    """What the server's thread may know of the session's trainer, fixed when it is
    built: its size, device, data (read, never changed), parameters and task."""

    build: int  # counts the trainers built in this session
    dim: int
    device: str
    dataset: Dataset
    parameters: tuple[tuple[str, tuple[int, ...]], ...]  # (name, shape) in model order
    tracked: tuple[int, ...]  # the coordinates the records sample
    task_kind: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.parameters]


@dataclass(frozen=True)
class Built:
    """The slices made a new trainer (``rebuilt``) or went back to t = 0."""

    info: RunInfo
    first: Record
    rebuilt: bool
    reason: str | None


@dataclass(frozen=True)
class Kept:
    """A build was refused (settings over the server's limits, or invalid): ``values``
    are the settings that run instead, for the sidebar to show; ``every``: all of them
    are another set-up's (the first build fell back to the default), else only the
    data's and model's differ from those asked for. ``text`` says why, in words."""

    values: dict
    every: bool
    text: str


@dataclass(frozen=True)
class Retracked:
    """Another sample of tracked coordinates, from the record after this one on."""

    tracked: tuple[int, ...]


def run_info(trainer: Trainer, build: int) -> RunInfo:
    parameters = tuple((name, tuple(p.shape)) for name, p in trainer.model.named_parameters())
    return RunInfo(
        build=build,
        dim=trainer.system.dim,
        device=str(trainer.device),
        dataset=trainer.dataset,
        parameters=parameters,
        tracked=tuple(int(i) for i in trainer.tracked),
        task_kind=task_kind(trainer),
    )


class SessionSlices:
    """The trainer and pictures of one session, and the work of its slices.

    ``post(*items)`` hands records, notices and the like to the server's thread.
    ``stop_at_horizon``: a run that reaches its horizon pauses and says so.
    """

    def __init__(
        self,
        post: Callable[..., None],
        budget: Budget,
        *,
        plane: tuple[str, tuple[int, int]] = ("pca", (0, 1)),
        stop_at_horizon: bool = True,
    ):
        self.post = post
        self.budget = budget
        self.plane = plane
        self.stop_at_horizon = stop_at_horizon
        self.trainer: Trainer | None = None
        self.pictures: Pictures | None = None
        self.horizon_passed = False
        self.per_interval = 0.01  # wall seconds per interval, learned as it runs
        self._builds = 0

    # ------------------------------------------------------------ building
    def build(self, values: dict, reason: str | None, data=None, *, first=False) -> None:
        """A new trainer from ``values`` (on the user's own ``data`` if given); bad
        settings keep the old one, or at the first build fall back to the default."""
        try:
            trainer = self._new_trainer(values, data)
        except (ValueError, TypeError) as err:
            if not first:
                text = f"{err}. The previous model is kept, and the sidebar shows its settings."
                self.post(Notice(text, "danger"))
                if self.trainer is not None:
                    self.post(Kept(self.trainer.config.values(), False, text))
                return
            fallback = make_config("default").values()
            trainer = self._new_trainer(fallback)
            self._builds += 1
            self._start(trainer, rebuilt=True, reason=None)
            text = (
                f"These settings could not be used: {err}. The default set-up runs "
                "instead, and the sidebar shows its settings."
            )
            self.post(Kept(fallback, True, text))
            return
        self._builds += 1
        self._start(trainer, rebuilt=True, reason=reason)

    def _new_trainer(self, values: dict, data: Dataset | None = None) -> Trainer:
        config = make_config(**values)
        if data is None:
            self.budget.check_data(config.n_samples)
        dataset = dataset_for(config) if data is None else data
        self.budget.check_model(
            config.architecture, config.hidden, dataset.input_dim, dataset.output_dim
        )
        return Trainer(config, dataset=dataset)

    def _new_pictures(self, trainer: Trainer) -> Pictures:
        kind, (x, y) = self.plane
        dim = trainer.system.dim
        coordinates = (min(x, dim - 1), min(y, dim - 1))
        if coordinates[0] == coordinates[1]:
            coordinates = (coordinates[0], (coordinates[0] + 1) % dim)
        widths = [p.shape[0] for p in trainer.model.parameters() if p.dim() == 1] or [1]
        chunk = self.budget.chunk_points(dim, len(trainer.dataset.x_train), widths)
        return Pictures(
            trainer,
            plane=kind,
            coordinates=coordinates,
            resolution=self.budget.resolution(41),
            chunk_size=chunk,
            memory_bytes=self.budget.memory_bytes,
        )

    def _start(self, trainer: Trainer, *, rebuilt: bool, reason) -> None:
        self.trainer, self.pictures = trainer, self._new_pictures(trainer)
        self.horizon_passed = False
        self.post(Built(run_info(trainer, self._builds), trainer.last, rebuilt, reason))

    def reset(self) -> None:
        """Back to t = 0 with the same trainer."""
        if self.trainer is not None:
            self.trainer.reset()
            self._start(self.trainer, rebuilt=False, reason=None)

    # ------------------------------------------------------------ commands
    def set_gains(self, gains: dict) -> None:
        """New gains for the next interval; the pictures follow the new potential."""
        if self.trainer is None:
            return
        try:
            self.trainer.set_gains(**gains)
        except (ValueError, TypeError) as err:
            self.post(Notice(f"{err}", "danger"))
            return
        self.pictures.refresh()

    def configure(self, settings: dict) -> None:
        """New solver settings (or horizon) for the next interval."""
        if self.trainer is None:
            return
        try:
            self.trainer.configure(**settings)
        except (ValueError, TypeError) as err:
            self.post(Notice(f"{err}", "danger"))
            return
        if "horizon" in settings:  # a later horizon is one to stop at again
            horizon = settings["horizon"]
            self.horizon_passed = 0 < horizon <= self.trainer.t + 1e-9

    def kick(self, energy: float, direction: str) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        try:
            booked = trainer.kick(energy, direction)
        except ValueError as err:
            self.post(Notice(f"{err}", "danger"))
            return
        last = trainer.last
        self.pictures.track([last])
        how = "along p" if direction == "momentum" else "in a random direction"
        text = (
            f"Kicked: +ΔE = {booked:.4g} into the momenta ({how}) at t = {last.t:g}: "
            f"H is now {last.hamiltonian:.4g}, supplied energy {last.supplied:.4g}."
        )
        self.post(last, Notice(text))

    def retrack(self, seed: int) -> None:
        """Another seeded sample of tracked coordinates (θ and p alike)."""
        if self.trainer is not None:
            tracked = self.trainer.track(seed)
            self.post(Retracked(tuple(int(i) for i in tracked)))

    def new_plane(self, kind: str, coordinates: tuple[int, int], path: list) -> None:
        """Pictures on another landscape plane, with the stored ``path`` drawn on it."""
        self.plane = (kind, tuple(coordinates))
        if self.trainer is None:
            return
        pictures = self._new_pictures(self.trainer)
        last = self.trainer.last
        pictures.track([point for point in path if point.t < last.t] + [last])
        self.pictures = pictures

    # ------------------------------------------------------------ training
    def train(self, n: int) -> tuple[int, bool]:
        """Integrate ``n`` intervals; returns (intervals done, whether the run goes on:
        False at the horizon or on a failure, which are posted)."""
        trainer = self.trainer
        started = time.perf_counter()
        try:
            records = trainer.advance(n)
        except TrainingError as err:
            self._stopped(err.records, err)
            return len(err.records), False
        except Exception as err:  # out of memory, or a bug: said, never silent
            kind = "out of memory" if "out of memory" in str(err).lower() else "error"
            failure = TrainingError(f"Training stopped ({kind}): {err}", t=trainer.t, kind=kind)
            self._stopped([], failure)
            return 0, False
        took = time.perf_counter() - started
        self.per_interval = 0.7 * self.per_interval + 0.3 * took / max(1, len(records))
        self.pictures.track(records)
        self.post(*records)
        horizon = trainer.config.horizon
        if self.stop_at_horizon and not self.horizon_passed and 0 < horizon <= trainer.t + 1e-9:
            self.horizon_passed = True
            self.pictures.settle()
            self.post(Notice(f"Reached the horizon T = {horizon:g}. Press Run to go on, or Reset."))
            return len(records), False
        return len(records), True

    def _stopped(self, records: list[Record], error: TrainingError) -> None:
        self.pictures.track(records)
        self.pictures.settle()
        self.post(*records, error)

    def chunk_size(self, seconds: float, max_rate: float | None) -> int:
        """Intervals in one slice: about ``seconds`` of work, fewer under a cap."""
        n = min(200, seconds / self.per_interval)
        if max_rate:
            n = min(n, max_rate * seconds)
        return int(max(1, n))

    def close(self) -> None:
        """Let go of the trainer and pictures (the session has left the pool)."""
        self.trainer = self.pictures = None
