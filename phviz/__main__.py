"""python -m phviz: train from the command line, compare optimizers, reproduce figures.

    python -m phviz train --dataset moons --hidden 16,16 --damping 0.5 --inertia 1 \\
        --dt 0.1 --epochs 20 --solver dopri5 --device auto --out run.json
    python -m phviz train --preset paper-duffing --out duffing.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys

# Modules that add a subcommand of their own through ``add_parser(subparsers)``.
SUBCOMMAND_MODULES = ("phviz.compare", "phviz.experiments", "phviz.sweep")


def add_train_parser(subparsers) -> None:
    from .config import PRESETS, SOLVERS
    from .data import DATASETS

    p = subparsers.add_parser(
        "train",
        help="train one model as a port-Hamiltonian system",
        description="Train one model; prints a summary and writes it as JSON with --out.",
    )
    p.add_argument("--preset", choices=list(PRESETS), help="start from a preset")
    p.add_argument("--dataset", choices=list(DATASETS))
    p.add_argument("--n-samples", type=int, help="points in all (train + test)")
    p.add_argument("--noise", type=float)
    p.add_argument("--train-fraction", type=float)
    p.add_argument("--seed", type=int, help="seed of the data and the initial weights")
    p.add_argument("--linear", action="store_true", help="a linear model instead of an MLP")
    p.add_argument("--hidden", help="hidden widths, e.g. 16,16")
    p.add_argument("--activation", choices=["softplus", "tanh", "relu", "sigmoid"])
    p.add_argument("--damping", type=float, help="damping B >= 0")
    p.add_argument("--inertia", type=float, help="inertia M > 0")
    p.add_argument("--potential-gain", type=float, help="potential gain a > 0")
    p.add_argument("--weight-decay", type=float, help="weight decay c >= 0")
    p.add_argument("--batch-size", type=int, help="points per batch; 0 = full batch")
    p.add_argument("--dt", type=float, help="switching interval Δt (time each batch is held)")
    p.add_argument("--epochs", type=float, help="passes over the training set")
    p.add_argument("--horizon", type=float, help="end time T (instead of --epochs)")
    p.add_argument("--solver", choices=list(SOLVERS))
    p.add_argument("--rtol", type=float)
    p.add_argument("--atol", type=float)
    p.add_argument("--step-size", type=float, help="step of the fixed-step solvers")
    p.add_argument("--max-steps", type=int, help="most solver steps in one switching interval")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", choices=["float32", "float64"])
    p.add_argument("--out", help="write the summary as JSON here")
    p.add_argument(
        "--initial-momentum", choices=["zero", "uniform"], help="p(0): zero or uniform in [0, 1)"
    )
    p.add_argument("--momentum-seed", type=int, help="seed of uniform initial momenta")
    p.add_argument(
        "--no-shuffle", action="store_true", help="batches in the data's own order every epoch"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=train_command)


def config_from_args(args):
    from .config import make_config

    overrides = dict(
        dataset=args.dataset,
        n_samples=args.n_samples,
        noise=args.noise,
        train_fraction=args.train_fraction,
        hidden=args.hidden,
        activation=args.activation,
        damping=args.damping,
        inertia=args.inertia,
        potential_gain=args.potential_gain,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        switching_interval=args.dt,
        horizon=args.horizon,
        solver=args.solver,
        rtol=args.rtol,
        atol=args.atol,
        step_size=args.step_size,
        max_steps=args.max_steps,
        device=args.device,
        dtype=args.dtype,
        initial_momentum=args.initial_momentum,
        momentum_seed=args.momentum_seed,
    )
    if args.no_shuffle:
        overrides["shuffle"] = False
    if args.linear:
        overrides["architecture"] = "linear"
    elif args.hidden is not None:
        overrides["architecture"] = "mlp"
    if args.seed is not None:
        overrides.update(data_seed=args.seed, model_seed=args.seed)
    return make_config(args.preset, **overrides)


def train_command(args) -> int:
    from tqdm import tqdm

    from .training import Trainer, TrainingError

    config = config_from_args(args)
    trainer = Trainer(config)
    if args.epochs is not None:
        if args.horizon is not None:
            raise ValueError("Give --epochs or --horizon, not both")
        if args.epochs <= 0:
            raise ValueError(f"Invalid --epochs: {args.epochs!r} (must be > 0)")
        intervals = math.ceil(args.epochs * trainer.batches_per_epoch)
        config.horizon = intervals * config.switching_interval
    horizon = config.horizon
    mode = "full batch" if trainer.full_batch else f"batches of {trainer.batch_size}"
    print(
        f"phviz · {config.dataset} · {_describe_model(trainer)} · {mode} · "
        f"damping {config.damping:g} · inertia {config.inertia:g} · {config.solver} · "
        f"T = {horizon:g} · {trainer.device}",
        file=sys.stderr,
    )
    bar = tqdm(total=horizon, unit="t", disable=args.quiet, file=sys.stderr, bar_format=_BAR)
    last_t = [0.0]

    def progress(t: float) -> None:
        if t > last_t[0]:
            bar.update(min(t, horizon) - last_t[0])
            last_t[0] = min(t, horizon)
            bar.set_postfix_str(f"nfe {trainer.system.nfe}", refresh=False)

    error = None
    # the summary needs the last record only: about a thousand along the way suffice
    # (for the progress bar), where one an interval would cost more than the steps
    intervals = round(horizon / config.switching_interval)
    try:
        trainer.run(horizon, progress=progress, record_every=max(1, intervals // 1000))
    except TrainingError as err:
        error = err
    finally:
        bar.close()
    summary = {**trainer.summary(), "config": config.values()}
    if error is not None:
        summary["error"] = str(error)
    _print_summary(summary)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {args.out}", file=sys.stderr)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


_BAR = "{l_bar}{bar}| t {n:.3g}/{total:.3g} [{elapsed}<{remaining}{postfix}]"


def _describe_model(trainer) -> str:
    sizes = trainer.model.sizes
    return (
        "linear " + "→".join(map(str, sizes))
        if len(sizes) == 2
        else "MLP " + "-".join(map(str, sizes)) + f" {trainer.config.activation}"
    )


def _print_summary(summary: dict) -> None:
    keys = [
        ("final_train_loss", "train loss"),
        ("test_loss", "test loss"),
        ("accuracy", "test accuracy"),
        ("final_hamiltonian", "H"),
        ("ledger_residual", "ledger residual"),
        ("t_final", "t"),
        ("nfe", "evaluations"),
        ("wall_seconds", "wall seconds"),
    ]
    for key, label in keys:
        if key in summary:
            value = summary[key]
            print(
                f"{label:>16}: {value:.6g}" if isinstance(value, float) else f"{label:>16}: {value}"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phviz", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, TypeError) as err:
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
