"""The curvature spectrum's cost and accuracy: ``phviz.spectrum`` with its defaults on
the digits MLP (64-32-32-10 tanh, 3,466 parameters, its 1,438 training points), one
thread, against the dense Hessian's eigenvalues (``torch.func.hessian`` in float64,
then ``eigvalsh``), which no test can afford on every run.

``quick``: a digits MLP with one hidden layer of 12 on 300 points instead.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch.func import functional_call, hessian

from ..config import make_config
from ..spectrum import spectrum
from ..training import Trainer
from . import Table


def dense_extremes(model: torch.nn.Module, loss_fn, inputs, targets) -> tuple[float, float]:
    """The smallest and largest eigenvalue of the loss's Hessian in θ, formed whole in
    float64 on a copy of ``model``."""
    model = copy.deepcopy(model).double()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    theta = torch.cat([p.detach().reshape(-1) for _, p in named])
    sizes = [p.numel() for _, p in named]
    inputs = inputs.double()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = flat.split(sizes)
        tensors = {name: t.view_as(p) for (name, p), t in zip(named, pieces, strict=True)}
        return loss_fn(functional_call(model, tensors, (inputs,)), targets)

    eigenvalues = torch.linalg.eigvalsh(hessian(loss)(theta))
    return float(eigenvalues[0]), float(eigenvalues[-1])


def measure(quick: bool = False) -> dict:
    """Seconds of ``phviz.spectrum`` with its defaults (median of 3, after a warm-up)
    and its extremes against the dense ones, at the model's initial θ."""
    hidden, samples = ("12", 300) if quick else ("32,32", None)
    config = make_config("default", dataset="digits", hidden=hidden, device="cpu")
    if samples is not None:
        config = make_config(**{**config.values(), "n_samples": samples})
    trainer = Trainer(config)
    model, data = trainer.model, trainer.dataset
    inputs, targets = data.x_train, data.y_train
    spectrum(model, data.loss_fn, inputs[:50], targets[:50])  # first use builds torch.func's
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        found = spectrum(model, data.loss_fn, inputs, targets)
        seconds.append(time.perf_counter() - started)
    return {
        "network": "-".join(str(s) for s in model.sizes),
        "parameters": trainer.system.dim,
        "points": len(inputs),
        "seconds": statistics.median(seconds),
        "found": found.extremes,
        "dense": dense_extremes(model, data.loss_fn, inputs, targets),
    }


def tables(quick: bool = False) -> list[Table]:
    torch.set_num_threads(1)
    r = measure(quick)
    scale = max(abs(r["dense"][0]), abs(r["dense"][1]))
    rows = [
        [name, found, dense, abs(found - dense) / abs(dense), abs(found - dense) / scale]
        for name, found, dense in zip(("smallest", "largest"), r["found"], r["dense"], strict=True)
    ]
    title = (
        f"The curvature spectrum of the digits MLP {r['network']} tanh ({r['parameters']:,} "
        f"parameters, {r['points']:,} points), defaults, 1 thread: {r['seconds']:.3g} s"
    )
    return [
        Table(
            "spectrum",
            title,
            ["eigenvalue", "phviz.spectrum", "dense eigvalsh", "relative error", "÷ largest |λ|"],
            rows,
            "phviz.spectrum: stochastic Lanczos quadrature, median of 3 calls after a warm-up; "
            "targets: at most 1 s and extremes within 1 %. Dense: torch.func.hessian of the "
            "loss in float64, then torch.linalg.eigvalsh, at the same θ.",
        )
    ]
