"""A run built from a ``TrainingConfig``: its data, model, system and initial state."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainingConfig
from ..data import Dataset, make_dataset
from ..dynamics import PortHamiltonianSystem
from ..models import build_model

# "auto" sends a run to the GPU only when one evaluation has this many multiply-adds
# (parameters × points in a batch) or more: below it, as for the paper's 6- and
# 338-parameter models, kernel launches cost more than the arithmetic they launch
# (``python -m phviz.bench device`` measures where the GPU overtakes the CPU).
GPU_WORK_THRESHOLD = 5_000_000

# The authors' notebook (linear boundary) starts from these, in its order w11, w12,
# bias1, w21, w22, bias2, where output i = wi1·u1 + wi2·u2 + biasi.
NOTEBOOK_WEIGHTS = (0.6, -2.3, -0.1, -1.1, -1.2, 0.3)
NOTEBOOK_MOMENTA = (-1.2, 0.3, 0.1, 1.6, -0.4, 1.6)


@dataclass
class Run:
    """Everything a configured run starts from, on its device and in its dtype."""

    dataset: Dataset
    model: torch.nn.Module
    system: PortHamiltonianSystem
    device: torch.device
    dtype: torch.dtype
    theta: torch.Tensor  # θ(0)
    momentum: torch.Tensor  # p(0)


def build_run(config: TrainingConfig, dataset: Dataset | None = None) -> Run:
    """The run ``config`` describes; ``dataset`` replaces the one it would draw."""
    dtype = getattr(torch, config.dtype)
    if dataset is None:
        dataset = dataset_for(config)
    model = initial_model(config, dataset, dtype=dtype)
    n_parameters = sum(p.numel() for p in model.parameters())
    batch = len(dataset.x_train) if config.batch_size <= 0 else config.batch_size
    device = resolve_device(config.device, n_parameters * batch)
    dataset = dataset.to(device, dtype)
    model = model.to(device)
    system = PortHamiltonianSystem(
        model,
        dataset.loss_fn,
        damping=config.damping,
        inertia=config.inertia,
        potential_gain=config.potential_gain,
        weight_decay=config.weight_decay,
    )
    theta = system.initial_state()[: system.dim].clone()
    return Run(dataset, model, system, device, dtype, theta, initial_momentum(config, model, theta))


def dataset_for(config: TrainingConfig) -> Dataset:
    """The data ``config`` draws (seeded: the same points every time)."""
    return make_dataset(
        config.dataset,
        n_samples=config.n_samples,
        noise=config.noise,
        train_fraction=config.train_fraction,
        seed=config.data_seed,
    )


def initial_model(
    config: TrainingConfig, dataset: Dataset, *, device="cpu", dtype=torch.float32
) -> torch.nn.Module:
    """The model ``config`` describes for ``dataset``, with its initial weights θ(0)."""
    model = build_model(
        dataset.input_dim,
        dataset.output_dim,
        architecture=config.architecture,
        hidden=config.hidden,
        activation=config.activation,
        softplus_beta=config.softplus_beta,
        seed=config.model_seed,
        device=device,
        dtype=dtype,
    )
    if config.initial_state == "paper-notebook":
        weight, bias = _notebook_layout(NOTEBOOK_WEIGHTS, model)
        with torch.no_grad():
            for param, value in zip(model.parameters(), (weight, bias), strict=True):
                param.copy_(value)
    return model


def initial_momentum(
    config: TrainingConfig, model: torch.nn.Module, theta: torch.Tensor
) -> torch.Tensor:
    """p(0) as configured, shaped like ``theta``: zero, uniform in [0, 1) (seeded), or
    the notebook's."""
    if config.initial_state == "paper-notebook":
        weight, bias = _notebook_layout(NOTEBOOK_MOMENTA, model)
        return torch.cat([weight.reshape(-1), bias]).to(theta)
    if config.initial_momentum == "uniform":
        g = torch.Generator().manual_seed(config.momentum_seed)
        return torch.rand(theta.shape, generator=g, dtype=torch.float64).to(theta)
    return torch.zeros_like(theta)


def resolve_device(name: str, work: int | None = None) -> torch.device:
    """The device called ``name``; "auto" weighs ``work`` (parameters × batch points)."""
    if name == "auto":
        large = work is None or work >= GPU_WORK_THRESHOLD
        return torch.device("cuda" if torch.cuda.is_available() and large else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("Invalid device: 'cuda' (no CUDA device is available here; use 'cpu')")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"Invalid device: {name!r} (choose 'auto', 'cpu' or 'cuda')")
    return torch.device(name)


def _notebook_layout(values, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a 2→2 linear layer from six values in the notebook's order."""
    shapes = [tuple(p.shape) for p in model.parameters()]
    if shapes != [(2, 2), (2,)]:
        raise ValueError(
            "Invalid initial_state: 'paper-notebook' needs the linear 2→2 model "
            f"(architecture='linear' on a 2-class, 2-feature dataset), got shapes {shapes}"
        )
    rows = torch.tensor(values, dtype=torch.float64).view(2, 3)
    return rows[:, :2].contiguous(), rows[:, 2].contiguous()
