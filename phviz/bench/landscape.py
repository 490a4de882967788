"""Loss-surface speed: vmap in chunks against a per-point loop, and a large grid's cost.

1. The paper's Duffing MLP (2-16-16-2, softplus) on its 399 points, a 51×51 surface,
   as phviz's MLP, as an ``nn.Sequential``, as a user's own module class, and as that
   class with a skip connection and with a LayerNorm: the batched evaluation (chunks
   of 256 grid points written into buffers that every chunk reuses; Linear layers as
   batched matmuls, their activations, sums, products and LayerNorms on whole chunks;
   any other module through ``torch.func.vmap``, also timed here) against the same
   grid evaluated point by point in a Python loop, both through ``functional_call``
   and writing each θ into the module, side by side; medians.
   Also the floor: plain forward passes over the same number of (point, sample) pairs.
2. The digits MLP (64-32-32-10) on its training set, a 101×101 surface in chunks
   sized by bytes (``Potential``'s default): time and
   peak memory, the latter as the growth of the process's peak resident set size
   (``resource.getrusage(...).ru_maxrss``), which sees torch's CPU allocations.
3. First, what a script sees: phviz's Duffing MLP's surface by ``loss_surface`` in
   fresh processes, on one thread and on every core, with the C library's default
   memory settings and with freed memory kept for reuse (``phviz.memory``),
   alternating; beside it the ``vmap`` route and the per-point loop in the same
   processes, and the page faults of each batched surface. 1. and 2. then run in this
   process with the default settings, as a script's do.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from ..config import make_config
from ..landscape import Plane, Potential, loss_surface
from ..memory import freed_memory_kept, keep_freed_memory
from ..training import Trainer
from . import Table, print_table
from .core import users_module, users_norm_module, users_own_module, users_skip_module

DIGITS_HIDDEN = "32,32"


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _module_loop(model, ds, plane: Plane, grid: np.ndarray) -> None:
    """The grid point by point, writing each θ into the module (the cheapest loop)."""
    first = next(model.parameters())
    points = plane.to(first.device, first.dtype)
    saved = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    try:
        with torch.no_grad():
            for x, y in grid:
                torch.nn.utils.vector_to_parameters(points.point(x, y), model.parameters())
                ds.loss_fn(model(ds.x_train), ds.y_train)
    finally:
        torch.nn.utils.vector_to_parameters(saved, model.parameters())


def _duffing_set_up(model: str):
    """The Duffing data, the network ``model`` names, a random plane through it, and
    its potential by the batched route and by the route of any other module."""
    trainer = Trainer(make_config("paper-duffing", device="cpu"))
    ds = trainer.dataset
    net = {
        "phviz": lambda: trainer.model,
        "module": users_module,
        "own": users_own_module,
        "skip": users_skip_module,
        "norm": users_norm_module,
    }[model]()
    potential = Potential(net, ds.loss_fn, ds.x_train, ds.y_train, chunk_size=256)
    general = Potential(net, ds.loss_fn, ds.x_train, ds.y_train, chunk_size=256)
    general._graph.steps = None  # the route of any other module: vmap over functional_call
    return ds, net, Plane.random(net, seed=0), potential, general


def duffing(quick: bool = False, *, model: str = "phviz") -> dict:
    """``model``: "phviz" (its MLP), "module" (the same network as a plain nn.Sequential),
    "own" (as a user's own module class, which the batched route traces), "skip" (that
    class with a skip connection around its second layer) or "norm" (with a LayerNorm
    after its first)."""
    ds, net, plane, potential, general = _duffing_set_up(model)
    extent, resolution = (-1.0, 1.0, -1.0, 1.0), 51
    xs, ys = np.linspace(-1, 1, resolution), np.linspace(-1, 1, resolution)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    looped = Potential(net, ds.loss_fn, ds.x_train, ds.y_train, chunk_size=256, batched=False)
    pairs, targets = ds.x_train.repeat(256, 1), ds.y_train.repeat(256, 1)
    n_chunks = -(-len(grid) // 256)

    def forward_floor():
        with torch.no_grad():
            for _ in range(n_chunks):
                ds.loss_fn(net(pairs), targets)

    potential.surface(plane, extent, 5)  # warm-up
    general.surface(plane, extent, 5)
    repeats = 2 if quick else 5
    batched_times, vmap_times, loop_times, module_times, floor_times = [], [], [], [], []
    for _ in range(repeats):  # interleaved, so that noise from other work hits all alike
        batched_times.append(_median_seconds(lambda: potential.surface(plane, extent, 51), 1))
        vmap_times.append(_median_seconds(lambda: general.surface(plane, extent, 51), 1))
        loop_times.append(_median_seconds(lambda: looped.surface(plane, extent, 51), 1))
        module_times.append(_median_seconds(lambda: _module_loop(net, ds, plane, grid), 1))
        floor_times.append(_median_seconds(forward_floor, 1))
    return dict(
        batched=statistics.median(batched_times),
        vmap=statistics.median(vmap_times),
        loop=statistics.median(loop_times),
        module_loop=statistics.median(module_times),
        floor=statistics.median(floor_times),
        repeats=repeats,
        model=model,
    )


def fresh_surfaces(threads: int, quick: bool = False) -> dict:
    """What a script sees: in this (fresh) process, the Duffing MLP's 51×51 surface by
    ``loss_surface``'s batched route four times in a row from the start, by the
    ``vmap`` route, and by the per-point loop; seconds (medians), process CPU seconds
    of the batched surfaces, and the minor page faults of each batched surface."""
    torch.set_num_threads(threads)
    ds, net, plane, potential, general = _duffing_set_up("phviz")
    looped = Potential(net, ds.loss_fn, ds.x_train, ds.y_train, chunk_size=256, batched=False)
    extent = (-1.0, 1.0, -1.0, 1.0)
    batched, cpu, faults = [], [], []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF)
        started, cpu_started = time.perf_counter(), time.process_time()
        loss_surface(net, ds.loss_fn, ds.x_train, ds.y_train, plane, extent=extent)
        batched.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before.ru_minflt)
    vmap = [_median_seconds(lambda: general.surface(plane, extent, 51), 1) for _ in range(3)]
    loop = _median_seconds(lambda: looped.surface(plane, extent, 51), 1 if quick else 2)
    return dict(
        batched=statistics.median(batched),
        batched_runs=batched,
        cpu=statistics.median(cpu),
        vmap=statistics.median(vmap),
        loop=loop,
        faults=statistics.median(faults),
        kept=freed_memory_kept(),
    )


def fresh_processes(quick: bool = False) -> dict[tuple[int, bool], list[dict]] | None:
    """``fresh_surfaces`` in new interpreters, on 1 thread and on every core, with the C
    library's default memory settings and with freed memory kept (``phviz.memory``),
    alternating, so that a busy machine slows all alike: {(threads, kept): [one dict a
    process]}. None if one failed."""
    threads = [1] + ([os.cpu_count()] if (os.cpu_count() or 1) > 1 else [])
    runs: dict[tuple[int, bool], list[dict]] = {}
    for _ in range(1 if quick else 3):
        for n in threads:
            for keep in (False, True):
                command = [sys.executable, "-m", "phviz.bench.landscape", "--fresh", str(n)]
                command += ["--keep-freed-memory"] if keep else []
                command += ["--quick"] if quick else []
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"  (a fresh process failed: {done.stderr.strip().splitlines()[-1:]})")
                    return None
                runs.setdefault((n, keep), []).append(json.loads(done.stdout.splitlines()[-1]))
    return runs


def digits(quick: bool = False) -> dict:
    trainer = Trainer(make_config(dataset="digits", hidden=DIGITS_HIDDEN, device="cpu"))
    potential = Potential.from_trainer(trainer)  # chunks sized by bytes
    plane = Plane.random(trainer.model, seed=0)
    potential.surface(plane, (-1, 1, -1, 1), 3)  # warm-up
    resolution = 31 if quick else 101
    before = _peak_rss_mib()
    seconds = _median_seconds(lambda: potential.surface(plane, (-1, 1, -1, 1), resolution), 1)
    after = _peak_rss_mib()
    return dict(
        seconds=seconds,
        resolution=resolution,
        peak_growth_mib=after - before,
        peak_mib=after,
        parameters=trainer.system.dim,
        train_points=len(trainer.dataset.x_train),
        chunk=potential.chunk_size,
    )


MODELS = {
    "phviz": "phviz MLP",
    "module": "plain nn.Sequential",
    "own": "user's own nn.Module class",
    "skip": "user's own class with a skip connection",
    "norm": "user's own class with a LayerNorm",
}


def tables(quick: bool = False) -> list[Table]:
    # Fresh processes first, while this one has done nothing; it then keeps the C
    # library's default memory settings, as a script does.
    fresh = fresh_processes(quick)
    torch.set_num_threads(1)
    out = [] if fresh is None else [_fresh_table(fresh)]
    d = digits(quick)  # first: the peak-memory figure is a high-water mark of the process
    rows, repeats = [], 0
    cores = os.cpu_count() or 1
    for threads in [1] + ([cores] if cores > 1 else []):
        torch.set_num_threads(threads)
        try:
            for model in MODELS:
                r = duffing(quick, model=model)
                repeats = r["repeats"]
                rows.append(
                    [
                        MODELS[model],
                        threads,
                        1e3 * r["batched"],
                        1e3 * r["vmap"],
                        1e3 * r["module_loop"],
                        r["module_loop"] / r["batched"],
                        r["batched"] / r["floor"],
                    ]
                )
        finally:
            torch.set_num_threads(1)
    columns = ["network", "threads", "batched (ms)", "vmap (ms)", "loop (ms)"]
    columns += ["loop ÷ batched", "batched ÷ forward floor"]
    out.append(
        Table(
            "landscape-networks",
            "A 51×51 loss surface of the Duffing MLP 2-16-16-2 (399 points), however the "
            "network is written, in this process",
            columns,
            rows,
            f"Medians of {repeats} interleaved repeats. Batched: the surface's chunks as "
            "batched matmuls in one workspace; vmap: the route of a network they cannot "
            "run; loop: the module called once a grid point. Target: batched ≥ 5× the loop.",
        )
    )
    shape = f"64-{DIGITS_HIDDEN.replace(',', '-')}-10"
    out.append(
        Table(
            "landscape-digits",
            "A large surface: the digits MLP, 1 thread",
            [
                "network",
                "parameters",
                "training points",
                "surface",
                "chunk",
                "seconds",
                "peak RSS growth (MiB)",
            ],
            [
                [
                    shape,
                    d["parameters"],
                    d["train_points"],
                    f"{d['resolution']}²",
                    d["chunk"],
                    d["seconds"],
                    d["peak_growth_mib"],
                ]
            ],
            "Chunks sized by bytes: the widest layer's output within 16 MiB.",
        )
    )
    return out


def _fresh_table(runs: dict[tuple[int, bool], list[dict]]) -> Table:
    n = len(next(iter(runs.values())))
    rows = []
    for (threads, keep), results in runs.items():
        if keep and not results[0]["kept"]:
            continue  # not GNU libc: nothing was kept
        med = {k: statistics.median(r[k] for r in results) for k in ("batched", "cpu", "vmap")}
        loop = statistics.median(r["loop"] for r in results)
        ratio = statistics.median(r["loop"] / r["batched"] for r in results)
        faults = round(statistics.median(r["faults"] for r in results))
        kind = "kept" if keep else "default"
        rows.append(
            [
                threads,
                kind,
                1e3 * med["batched"],
                1e3 * med["cpu"],
                1e3 * med["vmap"],
                1e3 * loop,
                ratio,
                faults,
            ]
        )
    return Table(
        "landscape-script",
        "A 51×51 surface of the Duffing MLP as a script sees it: fresh processes",
        [
            "threads",
            "freed memory",
            "batched (ms)",
            "its CPU (ms)",
            "vmap (ms)",
            "loop (ms)",
            "loop ÷ batched",
            "page faults",
        ],
        rows,
        f"{n} fresh processes of each kind, alternating; each figure the median over them "
        "of their own medians (batched: loss_surface four times from the start; faults: "
        "minor page faults per batched surface). 'kept': the C library told to keep freed "
        "memory (phviz.memory), which phviz does not do by itself.",
    )


def report(quick: bool = False) -> None:
    for table in tables(quick):
        print_table(table)


if __name__ == "__main__":
    if "--fresh" in sys.argv:
        if "--keep-freed-memory" in sys.argv:
            keep_freed_memory()
        n_threads = int(sys.argv[sys.argv.index("--fresh") + 1])
        print(json.dumps(fresh_surfaces(n_threads, quick="--quick" in sys.argv)))
    else:
        report(quick="--quick" in sys.argv)
