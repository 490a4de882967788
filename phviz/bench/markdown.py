"""Benchmark tables as Markdown files, for the documentation's Benchmarks page.

    python -m phviz.bench.markdown train --out docs/benchmarks

``write_table`` writes one table to ``<directory>/<name>.md``, headed by what made it:
the command, the date, the machine and the phviz version. Its first line is a marker
that carries a checksum of everything below it, so ``check_file`` can tell a table
this writer made from one typed or edited by hand (``tests/test_docs.py`` checks every
table on the page). The Benchmarks page includes every file in that folder.

``main`` measures one table without the other benchmark modules: the command line's
own training runs of the paper's presets, each in a fresh process.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

MARKER = "<!-- written by python -m phviz.bench"
DEFAULT_DIRECTORY = Path("docs") / "benchmarks"
HEADER_FIELDS = ("command", "date", "machine", "phviz")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MARKER_LINE = re.compile(re.escape(MARKER) + r"; sha256 ([0-9a-f]{16}) -->")
_MISSING = "–"


# ------------------------------------------------------------------ writing
def write_table(
    name: str,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    directory: str | os.PathLike = DEFAULT_DIRECTORY,
    command: str | None = None,
    notes: str | None = None,
    date: str | None = None,
    machine: str | None = None,
) -> Path:
    """Write one table to ``directory/name.md`` and return the file's path.

    ``columns`` are the column names; each row holds one cell per column: a string as
    it is, an int with thousands separators, a float to four significant digits, None
    or NaN as a dash. Columns of numbers only are right-aligned. ``command`` is what
    made the table (default: this process's ``python -m ...`` command line), ``date``
    an ISO date (default: today, UTC), ``machine`` a description (default:
    ``describe_machine()``). ``notes`` is a paragraph between the header and the
    table: what was measured and how.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"Invalid table name: {name!r} (use lower-case letters, digits, '-' and '_')"
        )
    if not isinstance(title, str) or not title.strip() or "\n" in title:
        raise ValueError(f"Invalid title: {title!r} (expected one line of text)")
    body = "\n".join(
        [
            f"## {title.strip()}",
            "",
            f"- command: `{_one_line(command or invoked_command())}`",
            f"- date: {date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()}",
            f"- machine: {_one_line(machine or describe_machine())}",
            f"- phviz: {_versions()}",
            *([f"- load average: {_load()}"] if hasattr(os, "getloadavg") else []),
            "",
            *([notes.strip(), ""] if notes and notes.strip() else []),
            format_table(columns, rows),
        ]
    )
    path = Path(directory) / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"{MARKER}; sha256 {_digest(body)} -->\n\n{body}"
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a table
    return path


def format_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """The rows as a Markdown table (lines ending in newlines)."""
    columns = list(columns)
    if not columns or not all(isinstance(c, str) and c.strip() for c in columns):
        raise ValueError(f"Invalid columns: {columns!r} (expected names, at least one)")
    rows = [list(row) for row in rows]
    if not rows:
        raise ValueError("Invalid rows: none (a table needs at least one row)")
    for number, row in enumerate(rows, 1):
        if len(row) != len(columns):
            raise ValueError(
                f"Invalid row {number}: {len(row)} cells for {len(columns)} columns ({row!r})"
            )
    numeric = [
        all(_is_number(row[j]) or _is_missing(row[j]) for row in rows)
        and any(_is_number(row[j]) for row in rows)
        for j in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(_escape(c) for c in columns) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
        *("| " + " | ".join(format_cell(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def format_cell(value) -> str:
    """One cell as text: see ``write_table``."""
    if _is_missing(value):
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _escape(str(value))


def invoked_command() -> str:
    """This process's command line as typed: ``python -m module args`` where it ran as a
    module (``python -m phviz.bench core`` and the like), else ``python script args``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        words = ["python", "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    else:
        words = ["python", *sys.argv]
    return shlex.join(words)


def describe_machine() -> str:
    """The CPU's model name, the cores this process may use, and the GPU if torch sees one,
    e.g. ``AMD EPYC 7B13 · 2 cores · no GPU``."""
    cpu = _cpu_model() or platform.processor() or platform.machine() or "unknown CPU"
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    cores = f"{usable} cores" if usable == total else f"{usable} of {total} cores"
    return f"{cpu} · {cores} · {_gpu()}"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return None


def _gpu() -> str:
    try:
        import torch
    except ImportError:
        return "no GPU (torch not installed)"
    if not torch.cuda.is_available():
        return "no GPU"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return "GPU: " + ", ".join(names)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5 and 15 minutes, when written)"


def _versions() -> str:
    from phviz import __version__

    words = [__version__]
    try:
        import torch

        words.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    words.append(f"Python {platform.python_version()}")
    return " · ".join(words)


# ------------------------------------------------------------------ checking
def check_file(path: str | os.PathLike) -> list[str]:
    """What is wrong with a table file, as sentences; empty if ``write_table`` wrote it
    and nobody changed it since."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    found = _MARKER_LINE.fullmatch(first.strip())
    if found is None:
        return [f"{path.name}: the first line is not the writer's marker ({MARKER} ...)"]
    problems = []
    body = rest.removeprefix("\n")
    if found.group(1) != _digest(body):
        problems.append(f"{path.name}: changed since it was written (the checksum differs)")
    for name in HEADER_FIELDS:
        if not re.search(rf"^- {name}: \S", body, flags=re.MULTILINE):
            problems.append(f"{path.name}: no '- {name}:' line in the header")
    if not find_tables(body):
        problems.append(f"{path.name}: no table")
    return problems


def find_tables(text: str) -> list[str]:
    """The Markdown tables in ``text`` (outside fenced code), each as its lines."""
    tables, current, fence = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped[:3] in ("```", "~~~"):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        if fence is None and stripped.startswith("|"):
            current.append(stripped)
            continue
        if current:
            tables.append("\n".join(current))
            current = []
    if current:
        tables.append("\n".join(current))
    return tables


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not _is_missing(value)


def _escape(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------ one measurement
TRAIN_PRESETS = ("paper-blobs", "paper-blobs-online", "paper-duffing")


def train_table(presets: Sequence[str] = TRAIN_PRESETS, repeat: int = 3) -> list[list]:
    """Rows for ``presets``, each trained ``repeat`` times by ``python -m phviz train
    --preset P --out run.json`` in a fresh process: the final training loss, the test
    accuracy (classification presets), the vector-field evaluations and the end time
    from the JSON it writes, the run's own seconds (``wall_seconds``) and the whole
    command's (imports included), as medians."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"Invalid repeat: {repeat!r} (must be a whole number >= 1)")
    from phviz.config import PRESETS

    unknown = [name for name in presets if name not in PRESETS]
    if unknown or not presets:
        raise ValueError(f"Invalid presets: {list(presets)!r} (choose from {', '.join(PRESETS)})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="phviz-bench-") as folder:
        out = Path(folder) / "run.json"
        for preset in presets:
            runs, commands = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                _train(preset, out)
                commands.append(time.perf_counter() - started)
                runs.append(json.loads(out.read_text()))
            first = runs[0]
            rows.append(
                [
                    f"`{preset}`",
                    float(first["final_train_loss"]),
                    first.get("accuracy"),
                    int(first["nfe"]),
                    float(first["t_final"]),
                    statistics.median(float(r["wall_seconds"]) for r in runs),
                    statistics.median(commands),
                ]
            )
    return rows


TRAIN_COLUMNS = (
    "preset",
    "final training loss",
    "test accuracy",
    "vector-field evaluations",
    "t at the end",
    "run seconds",
    "command seconds",
)


def _train(preset: str, out: Path) -> None:
    command = [sys.executable, "-m", "phviz", "train", "--preset", preset]
    done = subprocess.run(
        [*command, "--out", str(out), "--quiet"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phviz.bench.markdown", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="table", required=True)
    p = sub.add_parser("train", help="time `python -m phviz train` on the paper's presets")
    p.add_argument("--presets", default=",".join(TRAIN_PRESETS), help="comma-separated presets")
    p.add_argument("--repeat", type=int, default=3, help="runs of each preset (median)")
    p.add_argument("--out", default=str(DEFAULT_DIRECTORY), help="folder of the table files")
    args = parser.parse_args(argv)
    presets = [name.strip() for name in args.presets.split(",") if name.strip()]
    rows = train_table(presets, repeat=args.repeat)
    path = write_table(
        "train",
        "Training the paper's presets from the command line",
        TRAIN_COLUMNS,
        rows,
        directory=args.out,
        notes=(
            f"Each preset trained {args.repeat} times by `python -m phviz train --preset P "
            "--out run.json --quiet`, each time in a fresh process. Loss, evaluations and "
            "end time are read from the JSON the command writes; *run seconds* is its "
            "`wall_seconds` (the integration alone), *command seconds* the whole process, "
            "imports included; both are medians."
        ),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
