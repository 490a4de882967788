"""Helpers shared by the test modules: small runs and systems with known answers."""

from __future__ import annotations

import pytest
import torch

import phviz


def make_small_config(preset: str = "default", **overrides) -> phviz.TrainingConfig:
    """A preset shrunk to run in a fraction of a second: 120 points, one hidden layer
    of 8 units, on the CPU (any setting can be overridden)."""
    values = dict(device="cpu", hidden="8", n_samples=120)
    values.update(overrides)
    return phviz.make_config(preset, **values)


def make_quadratic_system(inputs: torch.Tensor, **gains) -> phviz.PortHamiltonianSystem:
    """L(w) = mean((x·w)²) on the rows x of ``inputs``: a linear model without bias and
    zero targets, whose Hessian is 2·mean(x xᵀ) whatever w is."""
    model = torch.nn.Linear(inputs.shape[1], 1, bias=False).to(inputs.dtype)
    system = phviz.PortHamiltonianSystem(
        model, lambda out, target: ((out - target) ** 2).mean(), **gains
    )
    system.set_batch(inputs, torch.zeros(len(inputs), 1, dtype=inputs.dtype))
    return system


@pytest.fixture
def small_config():
    """``make_small_config`` as a fixture: call it with a preset and overrides."""
    return make_small_config


@pytest.fixture
def quadratic_system():
    """``make_quadratic_system`` as a fixture: call it with inputs and gains."""
    return make_quadratic_system
