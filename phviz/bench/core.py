"""The engine's cost: one vector-field evaluation against one plain training step,
and the paper's Duffing experiment to T = 100."""

from __future__ import annotations

import os
import statistics
import time

import torch

from ..config import make_config
from ..dynamics import PortHamiltonianSystem
from ..training import Trainer
from ..training.solve import integrate_odeint


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


def field_overhead(quick: bool = False, *, model: str = "phviz") -> dict:
    """Vector field (θ, p) ↦ (θ̇, ṗ) vs ``loss.backward()`` on the same model and batch.

    ``model``: "phviz" (its MLP), "module" (a plain ``nn.Sequential``, the same
    network) or "own" (the same as a user's own module class). The two are timed in
    alternation, so a busy machine slows both alike.
    """
    trainer = Trainer(make_config("paper-duffing", device="cpu"))
    system = trainer.system
    if model != "phviz":
        own = {"module": users_module, "own": users_own_module}[model]()
        system = PortHamiltonianSystem(own, trainer.dataset.loss_fn)
        system.set_batch(trainer.dataset.x_train, trainer.dataset.y_train)
    model = system.model
    inputs, targets = system.inputs, system.targets
    xi = trainer.xi.clone()
    t = torch.tensor(0.0)

    def plain_step():
        model.zero_grad(set_to_none=True)
        system.loss_fn(model(inputs), targets).backward()

    def field():
        system(t, xi)

    number, repeats = (100, 5) if quick else (400, 15)
    plain, vector_field = [], []
    for _ in range(repeats):
        plain.append(median_seconds(plain_step, number=number, repeats=1))
        vector_field.append(median_seconds(field, number=number, repeats=1))
    ratios = [f / p for f, p in zip(vector_field, plain, strict=True)]
    return {
        "plain_us": 1e6 * statistics.median(plain),
        "field_us": 1e6 * statistics.median(vector_field),
        "ratio": statistics.median(ratios),
    }


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
    y0 = torch.cat([trainer.xi, trainer.xi.new_zeros(2)])
    times: dict = {True: [], False: []}
    nfe = {}
    for _ in range(1 if quick else 3):
        for own in (True, False):
            system.nfe = 0
            start = time.perf_counter()
            with torch.no_grad():
                integrate_odeint(system, config, y0, 0.0, 100, None, own_dopri5=own)
            times[own].append(time.perf_counter() - start)
            nfe[own] = system.nfe
    return {
        "phviz": statistics.median(times[True]),
        "torchdiffeq": statistics.median(times[False]),
        "phviz_nfe": nfe[True],
        "torchdiffeq_nfe": nfe[False],
    }


def report(quick: bool = False) -> None:
    torch.set_num_threads(1)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before: {load} (1, 5, 15 min)")
    print(
        "vector field vs plain forward+backward, paper's Duffing MLP 2-16-16-2, 399 points, "
        "1 thread:"
    )
    for kind, label in (
        ("phviz", "phviz MLP"),
        ("module", "plain nn.Sequential"),
        ("own", "user's own module class"),
    ):
        o = field_overhead(quick, model=kind)
        print(
            f"  {label}: plain step {o['plain_us']:.0f} µs · vector field "
            f"{o['field_us']:.0f} µs · ratio {o['ratio']:.2f} "
            "(median of paired repeats; target ≤ 1.1)"
        )
    d = duffing_run(quick)
    print("paper's Duffing experiment (preset paper-duffing), T = 100, one solve, 1 thread:")
    for control, label in (
        ("stabilized", "as preset, stabilized steps"),
        ("integral", "integral rule"),
    ):
        r = d[control]
        print(
            f"  {label}: wall {r['wall']:.2f} s (median of {1 if quick else 3}) · nfe {r['nfe']} · "
            f"final training MSE {r['mse']:.5f} · t {r['t']:g}"
        )
    s = duffing_solvers(quick)
    print("the same solve alone, the same field, phviz's dopri5 against torchdiffeq's:")
    print(
        f"  {s['phviz']:.2f} s ({s['phviz_nfe']} evaluations) against "
        f"{s['torchdiffeq']:.2f} s ({s['torchdiffeq_nfe']}): "
        f"{s['torchdiffeq'] / s['phviz']:.1f}× (median of {1 if quick else 3}, alternating)"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after: {load}")
