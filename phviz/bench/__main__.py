"""python -m phviz.bench [--quick] [section ...]: print every benchmark's figures."""

import argparse
import importlib
import platform

import torch

from . import SECTIONS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phviz.bench", description=__doc__)
    parser.add_argument("sections", nargs="*", help=f"some of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    cpu = platform.processor() or platform.machine()
    print(
        f"phviz benchmarks · torch {torch.__version__} · {cpu} · {torch.get_num_threads()} threads"
    )
    for name in args.sections or SECTIONS:
        print(f"\n== {name} ==")
        importlib.import_module(f"phviz.bench.{name}").report(quick=args.quick)


if __name__ == "__main__":
    main()
