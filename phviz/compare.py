"""phviz against standard optimizers, from the same initialisation and the same budget.

    python -m phviz compare --out assets                      # every dataset, 1000 evaluations
    python -m phviz compare --datasets moons,duffing --budget 300

Four methods train the same model from the same initial weights on the full training
set: phviz's continuous run (``Trainer``, adaptive dopri5), phviz's discrete optimizer
(``PortHamiltonianSGD``), ``torch.optim.SGD`` with momentum 0.9 and ``torch.optim.Adam``.
Each method tries every value of its small grid (``GRIDS``) and the best final training
loss is reported for it; every tried value is kept in the JSON. The budget is counted
in gradient evaluations: one per step for the discrete methods, the solver's
vector-field evaluations (nfe) for the ODE. Wall-clock counts only the training work
(steps, solves), not the loss evaluations made for the curves.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .config import TrainingConfig, make_config
from .data import DATASETS
from .optim import PortHamiltonianSGD
from .training import Trainer, TrainingError
from .training.run import initial_model

METHODS = ("phviz-ode", "phviz-sgd", "sgd-momentum", "adam")

# The value each method's grid varies, and the grid. The ODE has no learning rate (its
# solver picks the steps); its potential gain a sets how hard the loss pulls, which is
# the same knob. PortHamiltonianSGD's step h gives heavy-ball lr = a·h²/M and momentum
# 1 − h·B/M, so its grid spans about the same (lr, momentum) range as SGD's.
GRIDS: dict[str, tuple[float, ...]] = {
    "phviz-ode": (1.0, 3.0, 10.0, 30.0, 100.0),
    "phviz-sgd": (0.3, 0.6, 1.0, 1.5, 2.5),
    "sgd-momentum": (0.03, 0.1, 0.3, 1.0, 3.0),
    "adam": (0.003, 0.01, 0.03, 0.1, 0.3),
}
GRID_NAMES = {
    "phviz-ode": "potential gain a",
    "phviz-sgd": "step h",
    "sgd-momentum": "lr (momentum 0.9)",
    "adam": "lr",
}
SGD_MOMENTUM = 0.9
# The notebook's data are the paper's blobs drawn another way: compared once, as paper-blobs.
DEFAULT_DATASETS = tuple(d for d in DATASETS if d != "paper-notebook")
DEFAULT_BUDGET = 1000


@dataclass
class Curve:
    """One training run: the loss against gradient evaluations and wall-clock seconds."""

    dataset: str
    method: str
    setting: float
    evals: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_loss: float = math.nan
    accuracy: float = math.nan
    diverged: bool = False

    @property
    def final_loss(self) -> float:
        """The last training loss, or infinity for a run that diverged."""
        if self.diverged or not self.loss or not math.isfinite(self.loss[-1]):
            return math.inf
        return self.loss[-1]

    def point(self, evals: int, wall: float, loss: float) -> None:
        self.evals.append(int(evals))
        self.wall.append(float(wall))
        self.loss.append(float(loss))


def config_for(dataset: str, device: str = "cpu") -> TrainingConfig:
    """The model and gains each dataset is compared with: its paper preset, else 'default'."""
    if dataset not in DATASETS:
        raise ValueError(f"Invalid dataset: {dataset!r} (choose from {', '.join(DATASETS)})")
    if dataset == "duffing":
        # every method starts at rest from the same weights: p(0) = 0 here, not the
        # preset's uniform draw (the settings the compare table was measured with)
        return make_config(
            "paper-duffing",
            device=device,
            inertia=1.0,
            initial_momentum="zero",
            rtol=1e-3,
            atol=1e-5,
        )
    if dataset == "paper-blobs":
        return make_config("paper-blobs", device=device)
    return make_config("default", dataset=dataset, device=device, batch_size=0)


# ------------------------------------------------------------------ the runs
def run_ode(config: TrainingConfig, budget: int, potential_gain: float, dataset=None) -> Curve:
    """The continuous run, in solves of a few intervals, stopped before nfe passes budget.

    Each solve ends on an exact (nfe, wall, loss) point; the one that would pass the
    budget is dropped, so the ODE spends at most ``budget`` evaluations.
    """
    config = make_config(None, **{**config.values(), "potential_gain": potential_gain})
    config.switching_interval, config.eval_every = 0.5, 10**9
    trainer = Trainer(config, dataset=dataset)
    curve = Curve(config.dataset, "phviz-ode", potential_gain)
    curve.point(0, 0.0, trainer.last.train_loss)
    best = trainer.xi.clone()
    while trainer.system.nfe < budget:
        try:
            record = trainer.advance(2)[-1]
        except TrainingError:
            curve.diverged = True
            break
        if record.nfe > budget:
            break
        curve.point(record.nfe, record.wall, record.train_loss)
        best = trainer.xi.clone()
    _final_metrics(curve, trainer, best)
    return curve


def _final_metrics(curve: Curve, trainer: Trainer, theta_p: torch.Tensor) -> None:
    metrics = trainer.evaluate(theta_p[: trainer.system.dim])
    curve.test_loss = metrics.get("test_loss", math.nan)
    curve.accuracy = metrics.get("accuracy", math.nan)


def make_optimizer(method: str, params, setting: float, config: TrainingConfig):
    """The discrete optimizer ``method`` with its grid value ``setting``."""
    decay = config.weight_decay / config.potential_gain  # same objective as H's potential
    if method == "phviz-sgd":
        return PortHamiltonianSGD(
            params,
            setting,
            damping=config.damping,
            inertia=config.inertia,
            potential_gain=config.potential_gain,
            weight_decay=config.weight_decay,
        )
    if method == "sgd-momentum":
        return torch.optim.SGD(params, lr=setting, momentum=SGD_MOMENTUM, weight_decay=decay)
    if method == "adam":
        return torch.optim.Adam(params, lr=setting, weight_decay=decay)
    raise ValueError(f"Invalid method: {method!r} (choose from {', '.join(METHODS)})")


def run_discrete(
    config: TrainingConfig, budget: int, method: str, setting: float, trainer: Trainer
) -> Curve:
    """``budget`` full-batch steps of ``method`` from the trainer's initial weights."""
    ds = trainer.dataset
    model = initial_model(config, ds, device=trainer.device, dtype=trainer.dtype)
    optimizer = make_optimizer(method, model.parameters(), setting, config)
    loss_fn = ds.loss_fn
    curve = Curve(config.dataset, method, setting)
    with torch.no_grad():
        curve.point(0, 0.0, float(loss_fn(model(ds.x_train), ds.y_train)))
    every = max(1, budget // 100)
    wall = 0.0
    for step in range(1, budget + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(ds.x_train), ds.y_train).backward()
        optimizer.step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        wall += time.perf_counter() - started
        if step % every == 0 or step == budget:
            with torch.no_grad():
                loss = float(loss_fn(model(ds.x_train), ds.y_train))
            curve.point(step, wall, loss)
            if not math.isfinite(loss):
                curve.diverged = True
                break
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    _final_metrics(curve, trainer, theta)
    return curve


# ------------------------------------------------------------------ the study
def compare(
    datasets=DEFAULT_DATASETS,
    budget: int = DEFAULT_BUDGET,
    *,
    methods=METHODS,
    grids: dict | None = None,
    device: str = "cpu",
    log=None,
) -> dict:
    """{dataset: {method: [Curve for each grid value]}}, all from the same weights."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"Invalid budget: {budget!r} (a whole number of evaluations >= 1)")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"Invalid method: {method!r} (choose from {', '.join(METHODS)})")
    grids = {**GRIDS, **(grids or {})}
    log = log or (lambda message: None)
    _warm_up(methods)
    results: dict = {}
    for dataset in datasets:
        config = config_for(dataset, device)
        trainer = Trainer(config)  # builds the data and the initial weights once
        results[dataset] = {}
        for method in methods:
            curves = []
            for setting in grids[method]:
                if method == "phviz-ode":
                    curve = run_ode(config, budget, setting, trainer.dataset)
                else:
                    curve = run_discrete(config, budget, method, setting, trainer)
                log(
                    f"{dataset:>12} {method:>12} {GRID_NAMES[method]} {setting:g}: "
                    f"loss {curve.final_loss:.4g} after {curve.evals[-1]} evaluations"
                )
                curves.append(curve)
            results[dataset][method] = curves
    return results


def _warm_up(methods) -> None:
    """One throwaway step of each optimizer: torch's first ``step`` imports modules for
    seconds, which would otherwise be charged to the first method's wall-clock."""
    config = make_config("default")
    for method in methods:
        if method == "phviz-ode":
            continue
        weight = torch.zeros(2, requires_grad=True)
        optimizer = make_optimizer(method, [weight], 0.1, config)
        (weight - 1.0).square().sum().backward()
        optimizer.step()


def best(curves: list[Curve]) -> Curve:
    """The grid value with the lowest final training loss (diverged runs count as ∞)."""
    return min(curves, key=lambda c: c.final_loss)


def table_rows(results: dict) -> list[dict]:
    rows = []
    for dataset, by_method in results.items():
        for method, curves in by_method.items():
            b = best(curves)
            grid = ", ".join(f"{c.setting:g}" for c in curves)
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "grid": f"{GRID_NAMES[method]} ∈ {{{grid}}}",
                    "best_setting": b.setting,
                    "initial_loss": b.loss[0],
                    "final_loss": b.final_loss,
                    "evaluations": b.evals[-1],
                    "wall_seconds": b.wall[-1],
                    "test_loss": b.test_loss,
                    "accuracy": b.accuracy,
                    "diverged_settings": [c.setting for c in curves if c.diverged],
                }
            )
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = (
        "| dataset | method | best of grid | final train loss | gradient evaluations "
        "| wall s | test accuracy |\n|---|---|---|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        acc = "–" if math.isnan(r["accuracy"]) else f"{100 * r['accuracy']:.1f} %"
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['grid'].split(' ∈ ')[0]} = "
            f"{r['best_setting']:g} | {r['final_loss']:.4g} | {r['evaluations']} "
            f"| {r['wall_seconds']:.2f} | {acc} |"
        )
    return "\n".join(lines)


def plot(results: dict, path) -> Path:
    """Best run per method: loss against gradient evaluations and against wall-clock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 14, "axes.titlesize": 16, "axes.labelsize": 15,
                         "legend.fontsize": 12, "lines.linewidth": 2.4, "axes.grid": True,
                         "grid.alpha": 0.3})  # fmt: skip
    colours = dict(zip(METHODS, ("black", "C0", "C2", "C3"), strict=True))
    n = len(results)
    fig, axes = plt.subplots(n, 2, figsize=(15, 4.8 * n), squeeze=False, layout="constrained")
    for row, (dataset, by_method) in enumerate(results.items()):
        for method, curves in by_method.items():
            b = best(curves)
            label = f"{method} ({GRID_NAMES[method].split(' (')[0]} {b.setting:g})"
            style = dict(color=colours[method], label=label)
            axes[row, 0].semilogy(b.evals, b.loss, **style)
            axes[row, 1].semilogy(b.wall, b.loss, **style)
        axes[row, 0].set(
            title=f"{dataset}: loss per gradient evaluation",
            xlabel="gradient evaluations (nfe for the ODE)",
            ylabel="train loss",
        )
        axes[row, 1].set(
            title=f"{dataset}: loss per second", xlabel="wall-clock (s)", ylabel="train loss"
        )
        axes[row, 0].legend(loc="upper right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(results: dict, out, *, budget: int) -> dict:
    """compare.md, compare.json and compare.png under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results)
    md = out / "compare.md"
    md.write_text(
        f"Budget: {budget} gradient evaluations per run, full batch, same initial weights.\n"
        "Best of each method's grid by final training loss.\n\n" + markdown_table(rows) + "\n"
    )
    js = out / "compare.json"
    everything = {
        "budget": budget,
        "grids": {m: list(GRIDS[m]) for m in METHODS},
        "grid_names": GRID_NAMES,
        "table": rows,
        "runs": [asdict(c) for by in results.values() for cs in by.values() for c in cs],
    }
    js.write_text(json.dumps(_finite_or_none(everything), indent=1, allow_nan=False))
    png = plot(results, out / "compare.png")
    return {"markdown": md, "json": js, "png": png}


def _finite_or_none(value):
    """JSON has no NaN or infinity: those become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare phviz with SGD+momentum and Adam on the same budget",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                   help=f"comma-separated, from {', '.join(DATASETS)}")  # fmt: skip
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                   help="gradient evaluations per run")  # fmt: skip
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--out", default="assets", help="folder for compare.md/.json/.png")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=compare_command)


def compare_command(args) -> int:
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not datasets:
        raise ValueError("Invalid --datasets: '' (name at least one dataset)")
    log = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    results = compare(datasets, args.budget, methods=methods, device=args.device, log=log)
    paths = write_outputs(results, args.out, budget=args.budget)
    print(markdown_table(table_rows(results)))
    for path in paths.values():
        print(f"wrote {path}", file=sys.stderr)
    return 0
