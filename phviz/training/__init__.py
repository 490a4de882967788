"""Training as a hybrid (switched) port-Hamiltonian system, producing records."""

from .trainer import BackgroundRun, Record, Trainer, TrainingError

__all__ = ["BackgroundRun", "Record", "Trainer", "TrainingError"]
