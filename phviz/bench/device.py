"""CPU against CUDA: where a GPU starts to pay.

1. One vector-field evaluation (θ, p) ↦ (θ̇, ṗ), the Trainer's own, on each device for
   MLPs of growing work (parameters × points in a batch, the quantity ``device="auto"``
   weighs), median of paired repeats, the CPU with all of torch's threads.
2. Whole runs of such MLPs to t = 10, the Trainer as configured, on CUDA and on two
   CPU threads (a laptop's share): where ``device="auto"`` should switch.
3. The paper's Duffing experiment to T = 100 on each device.
4. A 51×51 loss surface of a mid-sized MLP on each device.

Without a CUDA device it says so and measures nothing.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from threadpoolctl import threadpool_limits

from ..config import make_config
from ..landscape import Plane, Potential
from ..training import Trainer
from ..training.run import GPU_WORK_THRESHOLD

DEVICES = ("cpu", "cuda")

# (hidden widths, points): from the paper's Duffing size to a large one.
SIZES = (
    ("16,16", 400),
    ("64,64", 2_000),
    ("128,128", 4_000),
    ("256,256", 10_000),
    ("512,512", 20_000),
    ("1024,1024", 50_000),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _seconds(fn, device: torch.device, number: int) -> float:
    """Mean seconds of ``number`` calls, the device drained before and after."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / number


def _trainer(hidden: str, points: int, device: str) -> Trainer:
    config = make_config(
        dataset="moons", n_samples=points, train_fraction=1.0, hidden=hidden, device=device
    )
    return Trainer(config)


def field_times(hidden: str, points: int, *, repeats: int) -> dict:
    """Median µs of one field evaluation on the CPU and on CUDA, and the work."""
    fields = {}
    for name in DEVICES:
        trainer = _trainer(hidden, points, name)
        xi, t = trainer.xi.clone(), torch.zeros((), device=trainer.device)
        fields[name] = (trainer.system, xi, t, trainer.device)
    work = fields["cpu"][0].dim * points
    number = max(3, min(200, int(2e9 / max(work, 1) / 50)))
    samples: dict = {name: [] for name in DEVICES}
    for system, xi, t, device in fields.values():
        _seconds(lambda s=system, x=xi, tt=t: s(tt, x), device, 3)  # warm-up
    for _ in range(repeats):
        for name, (system, xi, t, device) in fields.items():
            samples[name].append(_seconds(lambda s=system, x=xi, tt=t: s(tt, x), device, number))
    cpu, cuda = (1e6 * statistics.median(samples[k]) for k in DEVICES)
    return {"params": fields["cpu"][0].dim, "work": work, "cpu_us": cpu, "cuda_us": cuda}


# (hidden widths, points) of the whole runs, around where the devices break even
RUN_SIZES = (
    ("32,32", 1_000),
    ("64,64", 1_000),
    ("48,48", 2_000),
    ("64,64", 2_000),
    ("128,128", 2_000),
)


def whole_run_seconds(hidden: str, points: int, device: str, repeats: int) -> tuple[float, int]:
    """Median seconds of a run to t = 10 on ``device`` (two threads on the CPU), and
    its work (parameters × points)."""
    times = []
    with threadpool_limits(2):
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            for _ in range(repeats):
                config = make_config(
                    dataset="moons",
                    n_samples=points,
                    train_fraction=1.0,
                    hidden=hidden,
                    device=device,
                    horizon=10.0,
                )
                trainer = Trainer(config)
                start = time.perf_counter()
                trainer.run()
                _sync(trainer.device)
                times.append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
    return statistics.median(times), trainer.system.dim * points


def duffing(device: str, repeats: int) -> dict:
    """``paper-duffing`` run to T = 100 on ``device``: median seconds, evaluations, MSE.

    Both devices step by the integral rule (torchdiffeq's, which CUDA runs), so that
    they take the same steps."""
    runs = []
    for _ in range(repeats):
        trainer = Trainer(make_config("paper-duffing", device=device, step_control="integral"))
        trainer.run()
        _sync(trainer.device)
        runs.append(trainer.summary())
    return {
        "wall": statistics.median(r["wall_seconds"] for r in runs),
        "nfe": runs[-1]["nfe"],
        "mse": runs[-1]["final_train_loss"],
    }


def surface_seconds(hidden: str, points: int, device: str, repeats: int) -> float:
    """Median seconds of a 51×51 loss surface of that MLP on ``device``."""
    trainer = _trainer(hidden, points, device)
    ds = trainer.dataset
    potential = Potential(trainer.model, ds.loss_fn, ds.x_train, ds.y_train)
    plane = Plane.random(trainer.model, seed=0)
    times = []
    for _ in range(repeats + 1):
        _sync(trainer.device)
        start = time.perf_counter()
        potential.surface(plane, (-1.0, 1.0, -1.0, 1.0), 51)
        _sync(trainer.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def report(quick: bool = False) -> None:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to compare")
        return
    print(
        f"CUDA device: {torch.cuda.get_device_name()} · CPU: {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads"
    )
    repeats = 3 if quick else 7
    print("one vector-field evaluation, MLP on moons, full batch, float32 (median µs):")
    header = f"{'hidden':>10} {'points':>7} {'params':>9} {'work':>12} {'cpu':>9} {'cuda':>9}"
    print(f"  {header}  cpu/cuda")
    for hidden, points in SIZES[:4] if quick else SIZES:
        f = field_times(hidden, points, repeats=repeats)
        print(
            f"  {hidden:>10} {points:>7} {f['params']:>9,} {f['work']:>12,.0f} "
            f"{f['cpu_us']:>9.0f} {f['cuda_us']:>9.0f}  {f['cpu_us'] / f['cuda_us']:.2f}"
        )
    print("whole runs to t = 10, MLP on moons, the CPU on two threads (median s):")
    print(f"  {'hidden':>10} {'points':>7} {'work':>12} {'cpu':>7} {'cuda':>7}  cpu/cuda")
    for hidden, points in RUN_SIZES:
        cpu, work = whole_run_seconds(hidden, points, DEVICES[0], repeats=3)
        cuda, _ = whole_run_seconds(hidden, points, DEVICES[1], repeats=3)
        print(f"  {hidden:>10} {points:>7} {work:>12,} {cpu:>7.3f} {cuda:>7.3f}  {cpu / cuda:.2f}")
    print(f'  (device="auto" takes CUDA from work {GPU_WORK_THRESHOLD:,})')
    print("paper's Duffing experiment, T = 100, both by the integral step rule (median s):")
    for name in DEVICES:
        d = duffing(name, 1 if quick else 3)
        print(f"  {name}: {d['wall']:.2f} s · nfe {d['nfe']} · MSE {d['mse']:.5f}")
    hidden, points = SIZES[2]
    print(f"51×51 loss surface, MLP {hidden} on {points:,} points (median s):")
    for name in DEVICES:
        print(f"  {name}: {surface_seconds(hidden, points, name, repeats=3):.3f} s")
