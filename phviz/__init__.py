"""phviz: neural-network training as a damped port-Hamiltonian system.

The parameters θ are positions, their momenta p carry kinetic energy, the loss is
potential energy and damping drains it (Massaroli et al., IEEE CDC 2019).
"""

from .config import PRESETS, TrainingConfig, make_config
from .data import Dataset, make_dataset
from .dynamics import Energy, PortHamiltonianSystem
from .models import build_model
from .optim import PortHamiltonianSGD
from .solvers import SOLVERS
from .spectrum import Spectrum, layer_spectra, spectrum
from .sweep import sweep
from .training import Record, Trainer, TrainingError

__all__ = [
    "Dataset",
    "Energy",
    "PRESETS",
    "PortHamiltonianSGD",
    "PortHamiltonianSystem",
    "Record",
    "SOLVERS",
    "Spectrum",
    "Trainer",
    "TrainingConfig",
    "TrainingError",
    "build_model",
    "layer_spectra",
    "make_config",
    "make_dataset",
    "spectrum",
    "sweep",
]
__version__ = "0.1.0"
