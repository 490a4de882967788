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
SUBCOMMAND_MODULES = ("phviz.compare", "phviz.experiments", "phviz.gainmaps")


# TrainingConfig's settings that ``train`` offers no flag for, and why.
NOT_ON_CLI = (
    "name",  # param's own name for the instance, not a setting
    "n_tracked",  # which coordinates the records sample: ``train`` writes only the summary
)
# Shorter spellings kept beside a setting's own flag.
ALIASES = {"switching_interval": ("--dt",)}


def add_train_parser(subparsers) -> None:
    from .config import PRESETS, TrainingConfig
    from .flags import add_setting_flags, bounded

    p = subparsers.add_parser(
        "train",
        help="train one model as a port-Hamiltonian system",
        description="Train one model; prints a summary and writes it as JSON with --out.",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="start from a preset's settings, which the flags given change: 'default' is the "
        "explorer's opening set-up, the 'paper-' ones the paper's experiments",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="start from the settings in this JSON file (written by the explorer's export, "
        "or the summary of an earlier --out), which the flags given change",
    )
    p.add_argument(
        "--seed",
        type=bounded(int, TrainingConfig.param.data_seed),
        help="seed of the data and the initial weights (unless --data-seed or --model-seed)",
    )
    p.add_argument("--linear", action="store_true", help="a linear model: --architecture linear")
    p.add_argument("--epochs", type=float, help="passes over the training set (or --horizon)")
    p.add_argument("--out", help="write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    settings = p.add_argument_group(
        "settings", "One flag per setting of the training config; unset: the preset's or default."
    )
    names = [name for name in TrainingConfig.param if name not in NOT_ON_CLI]
    add_setting_flags(settings, names, aliases=ALIASES)
    p.set_defaults(func=train_command)


def config_from_args(args):
    from .config import TrainingConfig, make_config

    names = [name for name in TrainingConfig.param if name not in NOT_ON_CLI]
    overrides = {name: getattr(args, name) for name in names}
    if args.linear:
        if args.architecture not in (None, "linear"):
            raise ValueError("Give --linear or --architecture mlp, not both")
        overrides["architecture"] = "linear"
    elif args.hidden is not None and args.architecture is None:
        overrides["architecture"] = "mlp"
    if args.seed is not None:
        for name in ("data_seed", "model_seed"):
            if overrides[name] is None:
                overrides[name] = args.seed
    if args.config is not None:
        from .export import load_settings

        if args.preset is not None:
            raise ValueError("Give --config or --preset, not both")
        given = {k: v for k, v in overrides.items() if v is not None}
        return make_config(None, **{**load_settings(args.config).values(), **given})
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
