"""What a run leaves behind: one ``Record`` an interval, or a ``TrainingError``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class TrainingError(RuntimeError):
    """A run had to stop; the message says when, with which gains, and what to try."""

    def __init__(self, message: str, *, t: float, kind: str):
        super().__init__(message)
        self.t = t
        self.kind = kind  # "diverged", "solver" or "memory"
        self.records: list[Record] = []  # intervals completed before the failure


@dataclass
class Record:
    """The state of a run at the end of one switching interval."""

    t: float
    interval: int  # switching intervals completed
    epoch: float  # passes over the training set (fractional within an epoch)
    batch: int  # index of the batch just integrated within its epoch
    switched: bool  # the batch changed at the start of this interval
    train_loss: float  # mean loss over the whole training set
    hamiltonian: float  # H = kinetic + potential, on the batch held
    kinetic: float
    potential: float
    dissipated: float  # ∫ vᵀBv dt since the start
    supplied: float  # ∫ vᵀu dt since the start
    switch_jumps: float  # Σ (H_k − H_{k−1}) at the switches
    # H(t) − H(0) + dissipated − supplied − switch_jumps − gain_jumps
    ledger_residual: float
    momentum_norm: float  # ‖p‖
    nfe: int  # vector-field evaluations since the start
    wall: float  # seconds of computing since the start
    theta_sample: np.ndarray = field(repr=False)  # θ at the tracked coordinates
    p_sample: np.ndarray = field(repr=False)  # p at the tracked coordinates
    theta: np.ndarray = field(repr=False)  # the whole θ (float32, CPU)
    test_loss: float = math.nan  # evaluated every config.eval_every intervals
    accuracy: float = math.nan  # test accuracy (classification)
    train_accuracy: float = math.nan
    gain_jumps: float = 0.0  # Σ jumps of H when a, c or M changed while running
