"""Training as a hybrid (switched) port-Hamiltonian system, producing records.

``Trainer`` keeps a run's state, ledger and records (``step``, ``advance``, ``run``,
``reset``); the solvers of ``phviz.solvers`` integrate it.
"""

from .records import Record, TrainingError
from .trainer import Trainer

__all__ = ["Record", "Trainer", "TrainingError"]
