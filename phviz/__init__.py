"""phviz: neural-network training as a damped port-Hamiltonian system.

The parameters θ are positions, their momenta p carry kinetic energy, the loss is
potential energy and damping drains it (Massaroli et al., IEEE CDC 2019).
"""

from .config import PRESETS, TrainingConfig, make_config
from .data import Dataset, make_dataset
from .dynamics import Energy, PortHamiltonianSystem
from .models import build_model
from .optim import PortHamiltonianSGD
from .sweep import sweep
from .solvers import SOLVERS
from .training import Record, Trainer, TrainingError

__all__ = [
    "PRESETS",
    "SOLVERS",
    "Dataset",
    "Energy",
    "PortHamiltonianSGD",
    "PortHamiltonianSystem",
    "Record",
    "Trainer",
    "TrainingConfig",
    "TrainingError",
    "build_model",
    "make_config",
    "make_dataset",
    "sweep",
]
__version__ = "0.1.0"
