"""Benchmarks, run as ``python -m phviz.bench [section ...] [--markdown DIR]``.

Each section is a module here. One with ``tables(quick=False)`` returns its measurements
as ``Table`` rows, which the command prints and, with ``--markdown``, writes for the
documentation's Benchmarks page (``phviz.bench.markdown``); the others print their own
figures from ``report(quick=False)``. Every figure is a median of repeats measured side
by side in one run.
"""

from __future__ import annotations

from typing import NamedTuple

SECTIONS = ("core", "landscape", "spectrum", "device", "explorer", "sweep", "serve")


class Table(NamedTuple):
    """One table of a benchmark: ``name`` is its file's name on the Benchmarks page."""

    name: str
    title: str
    columns: list[str]
    rows: list[list]
    notes: str | None = None


def print_table(table: Table) -> None:
    """A table as plain text: its title, its columns, one line a row."""
    cells = [[_cell(v) for v in row] for row in table.rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(table.columns)]
    print(table.title)
    print("  " + "  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True)))
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if table.notes:
        print(f"  ({table.notes})")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
