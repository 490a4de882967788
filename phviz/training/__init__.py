"""Training as a hybrid (switched) port-Hamiltonian system, producing records.

``Trainer`` is the stepping core (``step``, ``advance``, ``run``, ``reset``);
``BackgroundRun`` runs one in a thread with play/pause/step for live views.
"""

from .background import BackgroundRun
from .records import Record, TrainingError
from .trainer import Trainer

__all__ = ["BackgroundRun", "Record", "Trainer", "TrainingError"]
