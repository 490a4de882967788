"""Keeping freed memory for reuse: a setting of the whole process, so each check runs
in a fresh interpreter of its own."""

import json
import platform
import subprocess
import sys
import textwrap

import pytest

from phviz.memory import keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def run_fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SURFACES = """
    import json, resource
    import torch
    from phviz import make_config
    from phviz.landscape import Plane, Potential
    from phviz.memory import freed_memory_kept, keep_freed_memory
    from phviz.training import Trainer

    # The Duffing MLP, its output clamped: a step the batched route does not take, so
    # its surfaces go by vmap, which allocates each chunk's activations anew.
    class Clamped(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).clamp(-1e6, 1e6)

    torch.set_num_threads(1)
    trainer = Trainer(make_config("paper-duffing", device="cpu"))
    ds = trainer.dataset
    model = Clamped(trainer.model)
    potential = Potential(model, ds.loss_fn, ds.x_train, ds.y_train, chunk_size=256)
    plane = Plane.random(model, seed=0)

    def surfaces():
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        z = [potential.surface(plane, (-1, 1, -1, 1), 31)[2] for _ in range(3)]
        return z[-1], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    surfaces()  # the model's first calls allocate what they keep
    before, faults_before = surfaces()
    was_kept = freed_memory_kept()
    kept = keep_freed_memory()
    surfaces()  # the heap grows to what a surface needs at once, then stays
    surfaces()
    after, faults_after = surfaces()
    print(json.dumps(dict(
        was_kept=was_kept, kept=kept, again=keep_freed_memory(), is_kept=freed_memory_kept(),
        same=bool((before == after).all()), faults_before=faults_before,
        faults_after=faults_after,
    )))
"""


WORKSPACE = """
    import json, resource
    import torch
    from phviz import make_config
    from phviz.landscape import Plane, Potential
    from phviz.memory import freed_memory_kept
    from phviz.training import Trainer

    torch.set_num_threads(1)
    trainer = Trainer(make_config("paper-duffing", device="cpu"))
    plane = Plane.random(trainer.model, seed=0)
    Potential.from_trainer(trainer).surface(plane, (-1, 1, -1, 1), 5)  # first calls

    faults = []
    for _ in range(3):  # a new potential each time, as loss_surface makes one
        potential = Potential.from_trainer(trainer, chunk_size=256)
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        potential.surface(plane, (-1, 1, -1, 1), 31)  # 961 points: four chunks
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
    space = potential.workspace(256)
    potential.evaluate_rows(plane.points([[0.0, 0.0]] * 256), space)
    size = len(space.buffers) * space.numel * 4
    print(json.dumps(dict(
        faults=faults, pages=size // resource.getpagesize(), buffers=len(space.buffers),
        kept=freed_memory_kept(),
    )))
"""


def test_a_surface_faults_in_its_workspace_alone_without_any_setting():
    """A script's surfaces reuse their buffers chunk after chunk: fresh pages for the
    workspace at most, where new activations for each of the four chunks would fault in
    eight such buffers or more."""
    out = run_fresh(WORKSPACE)
    assert not out["kept"] and out["buffers"] == 2  # a chain: two buffers
    assert all(f < 1.5 * out["pages"] + 500 for f in out["faults"]), out


@pytest.mark.skipif(not GLIBC, reason="the setting is GNU libc's")
def test_kept_memory_spares_the_page_faults_and_changes_no_number():
    out = run_fresh(SURFACES)
    assert not out["was_kept"]
    assert out["kept"] and out["again"] and out["is_kept"]
    assert out["same"]  # the same arithmetic, only the memory is reused
    if out["faults_before"] < 1000:
        pytest.skip(f"this C library spared the faults already ({out['faults_before']})")
    # surfaces reuse their own workspace now, so what is left to spare is the rest of
    # a surface's allocations: a margin of half, not a factor of four (which the
    # machine's other work can eat into)
    assert out["faults_after"] < out["faults_before"] / 2, out


@pytest.mark.skipif(GLIBC, reason="elsewhere than GNU libc")
def test_without_glibc_nothing_is_set():
    assert run_fresh(
        "import json; from phviz.memory import keep_freed_memory as k; "
        "print(json.dumps({'kept': k()}))"
    ) == {"kept": False}


def test_the_servers_pool_leaves_the_memory_setting_alone():
    """Its surfaces and gain maps reuse buffers of their own; a closed tab's memory
    goes back to the system."""
    out = run_fresh(
        """
        import json
        from phviz.memory import freed_memory_kept
        from phviz.scheduler import Scheduler

        before = freed_memory_kept()
        Scheduler.shared()
        print(json.dumps({"before": before, "after": freed_memory_kept()}))
        """
    )
    assert out == {"before": False, "after": False}


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "128"])
def test_invalid_trim_size_is_named(bad):
    with pytest.raises(ValueError, match="Invalid trim_mib"):
        keep_freed_memory(bad)
