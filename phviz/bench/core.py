"""The engine's cost: the vector field against a plain training step, each gradient
route against the one it replaces on its own case, and the paper's Duffing experiment
to T = 100."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..config import make_config
from ..dynamics import PortHamiltonianSystem
from ..ensemble import Ensemble
from ..routes import Autograd, HandWritten
from ..solvers import ODESolver, Plan, Settings, get_solver
from ..training import Trainer
from . import Table


def median_seconds(fn, *, number: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls."""
    for _ in range(max(3, number // 10)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def users_module(seed: int = 0) -> torch.nn.Module:
    """The paper's Duffing MLP as a user would write it: a plain ``nn.Sequential``."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(2, 16), nn.Softplus(beta=10.0), nn.Linear(16, 16), nn.Softplus(beta=10.0),
        nn.Linear(16, 2),
    )  # fmt: skip


class UsersNet(torch.nn.Module):
    """The same network as a user's own module class, its activations as functions."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.hidden1, self.hidden2, self.out = nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x):
        softplus = torch.nn.functional.softplus
        return self.out(softplus(self.hidden2(softplus(self.hidden1(x), beta=10.0)), beta=10.0))


def users_own_module(seed: int = 0) -> torch.nn.Module:
    """The paper's Duffing MLP as a user's own ``nn.Module`` subclass (see ``UsersNet``)."""
    torch.manual_seed(seed)
    return UsersNet()


class UsersSkipNet(UsersNet):
    """The same layers with a skip connection around the second: a graph, not a chain."""

    def forward(self, x):
        softplus = torch.nn.functional.softplus
        h = softplus(self.hidden1(x), beta=10.0)
        return self.out(h + softplus(self.hidden2(h), beta=10.0))


class UsersNormNet(UsersNet):
    """The same layers with a LayerNorm after the first: a normalisation of its own."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(16)

    def forward(self, x):
        softplus = torch.nn.functional.softplus
        h = softplus(self.norm(self.hidden1(x)), beta=10.0)
        return self.out(softplus(self.hidden2(h), beta=10.0))


def users_norm_module(seed: int = 0) -> torch.nn.Module:
    """The Duffing MLP's layers with a LayerNorm (see ``UsersNormNet``)."""
    torch.manual_seed(seed)
    return UsersNormNet()


def users_skip_module(seed: int = 0) -> torch.nn.Module:
    """The Duffing MLP's layers with a skip connection (see ``UsersSkipNet``)."""
    torch.manual_seed(seed)
    return UsersSkipNet()


def _alternating(fns: dict, *, number: int, repeats: int) -> dict:
    """Median seconds per call of each of ``fns``, timed in alternation so that a busy
    machine slows all alike."""
    samples: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(median_seconds(fn, number=number, repeats=1))
    return {name: statistics.median(values) for name, values in samples.items()}


def field_overhead(quick: bool = False, *, model: str = "phviz") -> dict:
    """Vector field (θ, p) ↦ (θ̇, ṗ) vs ``loss.backward()`` on the same model and batch.

    ``model``: "phviz" (its MLP), "module" (a plain ``nn.Sequential``, the same
    network) or "own" (the same as a user's own module class).
    """
    trainer = Trainer(make_config("paper-duffing", device="cpu"))
    system = trainer.system
    if model != "phviz":
        own = {"module": users_module, "own": users_own_module}[model]()
        system = PortHamiltonianSystem(own, trainer.dataset.loss_fn)
        system.set_batch(trainer.dataset.x_train, trainer.dataset.y_train)
    module = system.model
    inputs, targets = system.inputs, system.targets
    xi = trainer.xi.clone()
    t = torch.tensor(0.0)

    def plain_step():
        module.zero_grad(set_to_none=True)
        system.loss_fn(module(inputs), targets).backward()

    number, repeats = (100, 5) if quick else (400, 15)
    times = _alternating(
        {"plain": plain_step, "field": lambda: system(t, xi)}, number=number, repeats=repeats
    )
    return {
        "plain_us": 1e6 * times["plain"],
        "field_us": 1e6 * times["field"],
        "ratio": times["field"] / times["plain"],
    }


def routes(quick: bool = False) -> list[list]:
    """Each gradient route against the one it replaces, on the case it was chosen for:
    rows of (route, case, its time, the other's time, speed-up)."""
    number, repeats = (50, 3) if quick else (200, 9)
    rows = []
    # NumPy for an MLP on the CPU (the paper's Duffing network, full batch)
    duffing = Trainer(make_config("paper-duffing", device="cpu")).system
    theta = duffing.initial_state()[: duffing.dim].numpy().copy()
    out = np.empty_like(theta)
    autograd = Autograd(duffing.model, duffing.loss_fn, duffing.layout)
    autograd.hold(duffing.inputs, duffing.targets)
    times = _alternating(
        {
            "arrays": lambda: duffing.route.gradient_into(theta, 1.0, out),
            "autograd": lambda: autograd.gradient_into(theta, 1.0, out),
        },
        number=number,
        repeats=repeats,
    )
    rows.append(_row("Arrays", "Duffing MLP 2-16-16-2, 399 points", times, "arrays", "autograd"))
    # the written-out backward pass against autograd, one run on the torch path
    for label, config in (
        ("Duffing MLP 2-16-16-2, 399 points", make_config("paper-duffing", device="cpu")),
        (
            "digits MLP 64-32-32-10, 1,438 points",
            make_config("default", dataset="digits", hidden="32,32", device="cpu"),
        ),
    ):
        system = Trainer(config).system
        hand = HandWritten(system.model, system.loss_fn, system.layout)
        auto = Autograd(system.model, system.loss_fn, system.layout)
        for route in (hand, auto):
            route.hold(system.inputs, system.targets)
        x = system.initial_state()[: system.dim]
        times = _alternating(
            {
                "hand": lambda x=x, r=hand: r.loss_and_gradient(x),
                "auto": lambda x=x, r=auto: r.loss_and_gradient(x),
            },
            number=max(10, number // 4),
            repeats=repeats,
        )
        rows.append(_row("HandWritten (a GPU's)", label, times, "hand", "auto"))
    # the written-out backward pass batched over an ensemble, against vmap of autograd
    trainer = Trainer(make_config("default", device="cpu"))
    members = {"damping": [0.4] * 64}
    batched = Ensemble(trainer, members)
    mapped = Ensemble(trainer, members, hand_written=False)
    for ensemble in (batched, mapped):
        ensemble.set_batch(trainer.dataset.x_train, trainer.dataset.y_train)
    rows_of_arrays, _ = batched.start(trainer.initial_theta, trainer.initial_momentum)
    rows_of_tensors, _ = mapped.start(trainer.initial_theta, trainer.initial_momentum)
    times = _alternating(
        {
            "batched": lambda: batched.force(rows_of_arrays),
            "vmap": lambda: mapped.force(rows_of_tensors),
        },
        number=max(10, number // 4),
        repeats=repeats,
    )
    rows.append(_row("Ensemble, 64 members", "default MLP 2-16-16-2", times, "batched", "vmap"))
    return rows


def _row(route: str, case: str, times: dict, this: str, other: str) -> list:
    return [
        route,
        case,
        1e6 * times[this],
        1e6 * times[other],
        times[other] / times[this],
    ]


def duffing_run(quick: bool = False) -> dict:
    """The paper's Duffing experiment, its preset as given (stabilized step control), to
    T = 100 (one solve), and the same by the integral rule, in alternation."""
    runs: dict = {"stabilized": [], "integral": []}
    for _ in range(1 if quick else 3):
        for control in runs:
            trainer = Trainer(make_config("paper-duffing", device="cpu", step_control=control))
            trainer.run()
            runs[control].append(trainer.summary())
    result = {}
    for control, summaries in runs.items():
        last = summaries[-1]
        result[control] = {
            "wall": statistics.median(r["wall_seconds"] for r in summaries),
            "nfe": last["nfe"],
            "mse": last["final_train_loss"],
            "t": last["t_final"],
        }
    return result


def duffing_solvers(quick: bool = False) -> dict:
    """The Duffing solve alone (to T = 100, no records) by phviz's dopri5 and by
    torchdiffeq's, on the same field and by the same (integral) step rule, in
    alternation: seconds and evaluations."""
    trainer = Trainer(make_config("paper-duffing", device="cpu", step_control="integral"))
    system, config = trainer.system, trainer.config
    theta, p = system.split(trainer.xi)
    solvers = {"phviz": get_solver("dopri5"), "torchdiffeq": ODESolver("dopri5", "", adaptive=True)}
    times: dict = {name: [] for name in solvers}
    nfe = {}
    for _ in range(1 if quick else 3):
        for name, solver in solvers.items():
            system.nfe = 0
            plan = Plan(0.0, 100.0, 1)
            start = time.perf_counter()
            with torch.no_grad():
                solver.integrate(system, theta, p, plan, Settings.of(config), lambda end: None)
            times[name].append(time.perf_counter() - start)
            nfe[name] = system.nfe
    return {name: (statistics.median(times[name]), nfe[name]) for name in solvers}


def tables(quick: bool = False) -> list[Table]:
    torch.set_num_threads(1)
    repeats = 1 if quick else 3
    overhead = [
        [label, o["plain_us"], o["field_us"], o["ratio"]]
        for kind, label in (
            ("phviz", "phviz MLP"),
            ("module", "plain nn.Sequential"),
            ("own", "user's own module class"),
        )
        for o in [field_overhead(quick, model=kind)]
    ]
    d = duffing_run(quick)
    s = duffing_solvers(quick)
    return [
        Table(
            "core-field",
            "The vector field against a plain forward and backward pass (Duffing MLP "
            "2-16-16-2, 399 points, 1 thread)",
            ["model", "plain step (µs)", "vector field (µs)", "ratio"],
            overhead,
            "Medians of paired repeats. The field is one backward pass and a few vector "
            "operations; target ratio ≤ 1.1 for any module.",
        ),
        Table(
            "core-routes",
            "Each gradient route against the one it replaces, on its own case (1 thread)",
            ["route", "case", "route (µs)", "replaced (µs)", "speed-up"],
            routes(quick),
            "A route is kept where it is at least 1.1× on its case. Arrays (NumPy) and "
            "an ensemble's NumPy stacks replace autograd on the CPU; HandWritten (the "
            "backward pass written out in torch) is taken on a GPU only, which this table "
            "cannot time: its CPU rows show why it is not taken there.",
        ),
        Table(
            "core-duffing",
            "The paper's Duffing experiment (preset paper-duffing), T = 100, one solve, 1 thread",
            ["step control", "wall (s)", "evaluations", "final training MSE"],
            [
                [label, d[c]["wall"], d[c]["nfe"], d[c]["mse"]]
                for c, label in (
                    ("stabilized", "stabilized (the preset)"),
                    ("integral", "integral"),
                )
            ],
            f"Median of {repeats} runs, alternating.",
        ),
        Table(
            "core-dopri5",
            "The Duffing solve alone: phviz's dopri5 loop against torchdiffeq's (same field, "
            "integral step rule)",
            ["solver", "wall (s)", "evaluations"],
            [[name, wall, count] for name, (wall, count) in s.items()],
            f"Median of {repeats}, alternating.",
        ),
    ]
