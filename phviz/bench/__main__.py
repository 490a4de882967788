"""python -m phviz.bench [--quick] [--markdown DIR] [section ...]: every benchmark's figures."""

import argparse
import importlib
import platform

import torch

from . import SECTIONS, print_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phviz.bench", description=__doc__)
    parser.add_argument("sections", nargs="*", help=f"some of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument(
        "--markdown",
        metavar="DIR",
        help="also write each table as Markdown into DIR (the docs' docs/benchmarks)",
    )
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
        module = importlib.import_module(f"phviz.bench.{name}")
        if not hasattr(module, "tables"):
            module.report(quick=args.quick)
            continue
        for table in module.tables(quick=args.quick):
            print_table(table)
            if args.markdown:
                from .markdown import write_table

                path = write_table(
                    table.name,
                    table.title,
                    table.columns,
                    table.rows,
                    directory=args.markdown,
                    notes=table.notes,
                )
                print(f"  wrote {path}")


if __name__ == "__main__":
    main()
