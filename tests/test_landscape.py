"""Planes, projections, batched surfaces, phase portraits and the live window."""

import contextlib
import operator
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import phviz
from phviz.landscape import (
    LandscapeWindow,
    Plane,
    Potential,
    extent_around,
    grid_points,
    loss_surface,
    parameter_index,
    parameter_label,
    phase_curve,
    phase_portrait,
    trainer_phase_portrait,
    trainer_surface,
)

torch.set_num_threads(1)


class ScaledLinear(nn.Module):
    """y = scale · (x w + b): a loss quadratic in θ, with a buffer to carry along."""

    def __init__(self, n_in: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_in, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(1.5, dtype=torch.float64))

    def forward(self, x):
        return self.scale * (x @ self.w + self.b)


def quadratic_problem(n_in=3, n_points=20, seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n_points, n_in))
    y = g.standard_normal(n_points)
    return ScaledLinear(n_in), torch.from_numpy(x), torch.from_numpy(y)


def random_plane(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    origin, d1, d2 = (torch.randn(n, generator=g, dtype=dtype) for _ in range(3))
    return Plane(origin, d1, d2 + 0.3 * d1)  # deliberately not orthogonal


def small_mlp(dtype=torch.float64):
    return phviz.build_model(3, 2, hidden="5,4", activation="tanh", seed=3, dtype=dtype)


# ------------------------------------------------------------------- surfaces
def test_quadratic_surface_equals_closed_form():
    model, x, y = quadratic_problem()
    plane = random_plane(4, seed=1)
    a, c = 2.5, 0.3
    xs, ys, z = loss_surface(
        model,
        F.mse_loss,
        x,
        y,
        plane,
        extent=(-2.0, 1.0, -0.5, 3.0),
        resolution=(7, 5),
        potential_gain=a,
        weight_decay=c,
    )
    assert xs.shape == (7,) and ys.shape == (5,) and z.shape == (5, 7)
    np.testing.assert_allclose(xs, np.linspace(-2, 1, 7))
    o, d1, d2 = (v.numpy() for v in (plane.origin, plane.d1, plane.d2))
    xa = np.c_[x.numpy(), np.ones(len(x))]
    for i, yy in enumerate(ys):
        for j, xx in enumerate(xs):
            theta = o + xx * d1 + yy * d2
            loss = np.mean((1.5 * xa @ theta - y.numpy()) ** 2)
            expected = a * loss + 0.5 * c * theta @ theta
            assert z[i, j] == pytest.approx(expected, rel=1e-12)


def test_per_parameter_weight_decay_counts_each_entry():
    model, x, y = quadratic_problem()
    plane = random_plane(4, seed=2)
    c = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    _, _, z0 = loss_surface(model, F.mse_loss, x, y, plane, resolution=3)
    _, _, zc = loss_surface(model, F.mse_loss, x, y, plane, resolution=3, weight_decay=c)
    theta = plane.point(1.0, 1.0).numpy()  # the corner xs[2], ys[2]
    assert zc[2, 2] - z0[2, 2] == pytest.approx(0.5 * float(c.numpy() @ theta**2), rel=1e-12)


def test_default_chunks_keep_the_widest_output_within_their_bytes():
    from phviz.landscape.potentials import CHUNK_BYTES, MAX_CHUNK, chunk_rows

    narrow = small_mlp()  # widths 5, 4 and 2, float64
    assert chunk_rows(narrow, 30) == MAX_CHUNK
    wide = phviz.build_model(64, 10, hidden="32,32", seed=0)  # float32
    rows = chunk_rows(wide, 1438)
    assert rows * 1438 * 32 * 4 <= CHUNK_BYTES < (rows + 1) * 1438 * 32 * 4
    assert chunk_rows(wide, 10**9) == 1  # never none
    assert chunk_rows(nn.PReLU(), 100) == MAX_CHUNK  # no weight matrix: the old default
    x = torch.randn(1438, 64)
    labels = torch.randint(0, 10, (1438,))
    assert Potential(wide, F.cross_entropy, x, labels).chunk_size == rows
    assert Potential(wide, F.cross_entropy, x, labels, chunk_size=7).chunk_size == 7
    plane = Plane.random(wide, seed=0)
    kw = dict(extent=(-1, 1, -1, 1), resolution=(17, 13))
    _, _, sized = loss_surface(wide, F.cross_entropy, x, labels, plane, **kw)
    _, _, fixed = loss_surface(wide, F.cross_entropy, x, labels, plane, chunk_size=256, **kw)
    np.testing.assert_allclose(sized, fixed, rtol=1e-5)


def test_chunked_surface_equals_unchunked_and_loop():
    model = small_mlp()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (30,), generator=g)
    plane = Plane.random(model, seed=4)
    kw = dict(extent=(-1, 1, -1, 1), resolution=9)
    _, _, whole = loss_surface(model, F.cross_entropy, x, labels, plane, chunk_size=10_000, **kw)
    _, _, chunked = loss_surface(model, F.cross_entropy, x, labels, plane, chunk_size=7, **kw)
    _, _, looped = loss_surface(model, F.cross_entropy, x, labels, plane, batched=False, **kw)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    np.testing.assert_allclose(looped, whole, rtol=1e-12)
    # the centre of an odd grid is the plane's origin: the model's own loss
    with torch.no_grad():
        own = float(F.cross_entropy(model(x), labels))
    assert whole[4, 4] == pytest.approx(own, rel=1e-12)


class OwnNet(nn.Module):
    """A user's own module: layers as attributes, activations as functions and methods."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 6)
        self.inner = nn.Sequential(nn.Linear(6, 5), nn.SiLU())  # traced through
        self.last = nn.Linear(5, 2)

    def forward(self, x):
        h = self.inner(torch.tanh(self.first(x))).sigmoid()
        return self.last(F.softplus(h, beta=4.0))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        h = self.layer(x)
        return self.out(F.leaky_relu(h, float(h.shape[1])) + x)  # an argument from h


class Skip(nn.Module):
    """Skip connections, sums, differences and products: a graph, not a chain."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 5)
        self.block = nn.Linear(5, 5)
        self.last = nn.Linear(5, 2)

    def forward(self, x):
        h = torch.tanh(self.first(x))
        h = h + 0.5 * F.softplus(self.block(h))
        return self.last(h.mul(h) - h + self.first(x - 1.0))


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 5)
        self.norm = nn.LayerNorm(5, bias=False)
        self.last = nn.Linear(5, 2)

    def forward(self, x):
        h = self.first(x)
        return self.last(torch.relu(self.norm(h)) + h)


class Centred(nn.Module):
    """A reduction over the features: the rows' axis would move under batching."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.last = nn.Linear(4, 2)

    def forward(self, x):
        h = self.first(x)
        return self.last(h - h.mean(dim=1, keepdim=True))


class ActsOnData(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 2)

    def forward(self, x):
        return self.first(x + torch.relu(x))  # would act on the data itself


class InPlaceSkip(nn.Module):
    """Activations that overwrite their input, which a later step reads again."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 5)
        self.act = nn.ReLU(inplace=True)
        self.keep = nn.Identity()
        self.last = nn.Linear(5, 2)

    def forward(self, x):
        h = self.first(x)
        g = self.act(h)  # h itself, now without its negative entries
        k = F.leaky_relu(self.keep(g), 0.1, True)
        return self.last(1.0 - 0.5 * k + h * 2 + torch.sigmoid(h))


def _every_writer():
    """A chain through each activation the workspace writes in place or into a buffer."""
    acts = [
        nn.Softplus(beta=3.0),
        nn.GELU(approximate="tanh"),
        nn.SiLU(),
        nn.Mish(),
        nn.ELU(alpha=0.7),
        nn.Hardtanh(-0.5, 0.5),
        nn.LeakyReLU(0.2),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.GELU(),
        nn.ReLU(),
    ]
    layers = [nn.Linear(3, 6)]
    for act in acts:
        layers += [act, nn.Linear(6, 6)]
    return nn.Sequential(*layers, nn.Linear(6, 2))


def _chain_cases():
    torch.manual_seed(5)
    shared = nn.Linear(4, 4)
    return {
        "own module, traced": OwnNet().double(),
        "skip connections": Skip().double(),
        "normalised": nn.Sequential(
            nn.LayerNorm(3), nn.Linear(3, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 2)
        ).double(),
        "normalised, no shift, traced": Normed().double(),
        "phviz MLP": small_mlp(),
        "nested, no bias": nn.Sequential(
            nn.Sequential(nn.Linear(3, 6), nn.Softplus(beta=4.0)),
            nn.Sequential(nn.Linear(6, 5, bias=False), nn.GELU()),
            nn.Linear(5, 2),
        ).double(),
        "one layer used twice": nn.Sequential(
            nn.Linear(3, 4), nn.ReLU(), shared, nn.Tanh(), shared, nn.Linear(4, 2)
        ).double(),
        "in place, read again": InPlaceSkip().double(),
        "every activation written into a buffer": _every_writer().double(),
    }


@pytest.mark.parametrize(
    "case",
    [
        "phviz MLP",
        "nested, no bias",
        "one layer used twice",
        "own module, traced",
        "skip connections",
        "normalised",
        "normalised, no shift, traced",
        "in place, read again",
        "every activation written into a buffer",
    ],
)
def test_linear_graph_equals_the_general_route_and_the_loop(case):
    model = _chain_cases()[case]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(25, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (25,), generator=g)
    targets = torch.randn(25, 2, generator=g, dtype=torch.float64)
    plane = Plane.random(model, seed=2)
    for loss_fn, y in ((F.cross_entropy, labels), (F.mse_loss, targets)):
        kw = dict(potential_gain=1.7, weight_decay=0.02, chunk_size=11)
        chain = Potential(model, loss_fn, x, y, **kw)
        general = Potential(model, loss_fn, x, y, graph=False, **kw)
        assert chain.route == "graph" and general.route == "vmap"
        _, _, fast = chain.surface(plane, (-1, 1, -1, 1), 7)
        _, _, vmapped = general.surface(plane, (-1, 1, -1, 1), 7)
        _, _, looped = Potential(model, loss_fn, x, y, batched=False, **kw).surface(
            plane, (-1, 1, -1, 1), 7
        )
        np.testing.assert_allclose(fast, vmapped, rtol=1e-12)
        np.testing.assert_allclose(fast, looped, rtol=1e-12)
    # the model is left as it was: its parameters still parameters (functional_call's
    # weight tying once swapped a layer used twice back to a plain tensor)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_linear_graph_leaves_other_modules_to_vmap_and_runs_hooks():
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randn(10, 2, dtype=torch.float64)
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    frozen[0].bias.requires_grad_(False)  # not in θ: the module's own bias must be used
    others = {
        "frozen bias": frozen,
        "a normalisation with running statistics": nn.Sequential(
            nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)
        ),
        "a LayerNorm over two axes": nn.Sequential(
            nn.Linear(3, 4), nn.Unflatten(1, (2, 2)), nn.LayerNorm((2, 2)), nn.Flatten()
        ),
        "an activation first": nn.Sequential(nn.ReLU(inplace=True), nn.Linear(3, 2)),
        "not a Sequential": quadratic_problem(n_in=3)[0],
        "an argument computed from a result": Residual(),
        "a reduction": Centred(),
        "an activation on the data": ActsOnData(),
    }
    for name, model in others.items():
        model = model.double()
        potential = Potential(model, F.mse_loss, x, y if name != "not a Sequential" else y[:, 0])
        assert potential.route == "vmap", name
    plane = Plane.random(frozen, seed=0)
    _, _, z = loss_surface(frozen, F.mse_loss, x, y, plane, resolution=3)
    _, _, looped = loss_surface(frozen, F.mse_loss, x, y, plane, resolution=3, batched=False)
    np.testing.assert_allclose(z, looped, rtol=1e-12)
    # 3-D inputs: Linear acts on the last axis, the chain takes only rows of features
    assert Potential(small_mlp(), F.mse_loss, x[None], y[None]).route == "vmap"

    # a hook registered after the potential was made still runs
    model = small_mlp()
    potential = Potential(model, F.mse_loss, x, y)
    assert potential.route == "graph"
    seen = []
    handle = model[0].register_forward_hook(lambda *args: seen.append(1))
    try:
        assert not potential.route == "graph"
        potential.surface(Plane.random(model, seed=0), (-1, 1, -1, 1), 3)
    finally:
        handle.remove()
    assert seen and potential.route == "graph"

    # the same for a traced module, with the hook on a module the trace went through
    model = OwnNet().double()
    potential = Potential(model, F.mse_loss, x, y)
    assert potential.route == "graph"
    handle = model.inner.register_forward_pre_hook(lambda *args: seen.append(2))
    try:
        assert not potential.route == "graph"
        potential.surface(Plane.random(model, seed=0), (-1, 1, -1, 1), 3)
    finally:
        handle.remove()
    assert 2 in seen and potential.route == "graph"


def test_a_surfaces_chunks_share_one_workspace():
    model = _chain_cases()["skip connections"]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(25, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (25,), generator=g)
    potential = Potential(model, F.cross_entropy, x, labels, chunk_size=8)
    _, _, grid = grid_points((-1, 1, -1, 1), 7)  # 49 points: six chunks of 8, one of 1
    thetas = Plane.random(model, seed=1).points(grid)
    space = potential.workspace(8)
    shared, buffers = [], []
    for chunk in thetas.split(8):
        shared.append(potential.evaluate_rows(chunk, space))
        buffers.append([b.data_ptr() for b in space.buffers])
    # the first chunk creates the buffers, the others write over the same memory
    assert 2 <= len(buffers[0]) <= 4 and all(b == buffers[0] for b in buffers)
    alone = [potential.evaluate_rows(chunk, potential.workspace(8)) for chunk in thetas.split(8)]
    assert torch.equal(torch.cat(shared), torch.cat(alone))
    # a chain needs two: each activation overwrites the layer output it reads
    chain = Potential(small_mlp(), F.cross_entropy, x, labels, chunk_size=8)
    space = chain.workspace(8)
    chain.evaluate_rows(Plane.random(chain.model, seed=1).points(grid[:8]), space)
    assert len(space.buffers) == 2 and space.numel == 8 * 25 * 5  # rows·points·widest


_WRITTEN = [
    (nn.Softplus(beta=4.0, threshold=5.0), ()),
    (F.softplus, (3.0,)),
    (nn.GELU(approximate="tanh"), ()),
    (F.gelu, ()),
    (nn.SiLU(), ()),
    (nn.Mish(), ()),
    (F.elu, (0.5,)),
    (nn.Hardtanh(-2.0, 3.0), ()),
    (F.leaky_relu, (0.3,)),
    (nn.ReLU(), ()),
    (torch.relu, ()),
    (nn.Sigmoid(), ()),
    (F.sigmoid, ()),
    (torch.tanh, ()),
    (nn.Tanh(), ()),
]


@pytest.mark.parametrize("op, args", _WRITTEN, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_each_writer_is_the_kernel_of_its_step_bit_for_bit(op, args):
    from phviz.landscape import kernels

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = 12 * torch.randn(5, 17, 6, generator=g, dtype=dtype)
        x[0, 0, :3] = torch.tensor([float("nan"), -0.0, float("inf")])
        want = op(x, *args)
        function, leading = kernels.writer(op)
        out = torch.empty_like(x)
        assert function(x, *leading, *args, out=out) is out
        torch.testing.assert_close(out, want, rtol=0, atol=0, equal_nan=True)
        function(x, *leading, *args, out=x)  # in place: the input no later step reads
        torch.testing.assert_close(x, want, rtol=0, atol=0, equal_nan=True)


def test_writers_leave_in_place_calls_and_other_kernels_to_the_step_itself():
    from phviz.landscape import kernels

    x = torch.randn(4, 3)
    for op in (nn.ReLU(inplace=True), nn.LeakyReLU(inplace=True)):
        function, leading = kernels.writer(op)
        assert function(x, *leading, out=torch.empty_like(x)) is None
    function, _ = kernels.writer(F.relu)
    assert function(x, inplace=True, out=torch.empty_like(x)) is None
    function, _ = kernels.writer(operator.sub)
    assert function(1.0, x, out=torch.empty_like(x)) is None  # 1 - h: rsub, another kernel
    function, _ = kernels.writer(operator.mul)
    out = torch.empty_like(x)
    assert torch.equal(function(0.5, x, out=out), 0.5 * x)
    assert kernels.writer(nn.Softsign()) is None and kernels.writer(nn.ReLU6()) is None


_TINY = sys.float_info.min  # read at run time, so that the product below is not folded


def _flushing() -> bool:
    """Whether this thread flushes subnormal numbers to zero (Python's floats obey it too)."""
    return _TINY * 0.5 == 0.0


def test_subnormals_are_flushed_while_evaluating_and_the_callers_mode_restored():
    seen = []

    def watched_mse(out, y):
        seen.append(_flushing())  # the loss runs on the calling thread
        return F.mse_loss(out, y)

    model = nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=10.0), nn.Linear(4, 2))
    x, y = torch.randn(20, 3), torch.randn(20, 2)
    plane = Plane.random(model, seed=0)
    for caller in (False, True):
        if not torch.set_flush_denormal(caller):
            pytest.skip("this CPU has no flush-to-zero mode")
        try:
            for batched in (True, False):
                seen.clear()
                loss_surface(model, watched_mse, x, y, plane, resolution=3, batched=batched)
                assert seen and all(seen)
                assert _flushing() == caller  # as the caller left it
                Potential(model, watched_mse, x, y)(plane.points(np.zeros((2, 2))))
                assert _flushing() == caller
        finally:
            torch.set_flush_denormal(False)
    assert not _flushing()


def test_flushing_changes_no_number_where_the_softplus_underflows(monkeypatch):
    """A plane that reaches far from the weights: a softplus(β = 10) on its flat side."""
    from phviz.landscape import potentials

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 16), nn.Softplus(beta=10.0), nn.Linear(16, 16), nn.Softplus(beta=10.0),
        nn.Linear(16, 2),
    )  # fmt: skip
    x, y = torch.randn(60, 2), torch.randn(60, 2)
    base = Plane.random(model, seed=0)
    plane = Plane(base.origin, 10 * base.d1, 10 * base.d2)
    kw = dict(extent=(-1, 1, -1, 1), resolution=9)
    for batched in (True, False):
        _, _, flushed = loss_surface(model, F.mse_loss, x, y, plane, batched=batched, **kw)
        with monkeypatch.context() as m:
            m.setattr(potentials, "flushed_subnormals", contextlib.nullcontext)
            _, _, plain = loss_surface(model, F.mse_loss, x, y, plane, batched=batched, **kw)
        np.testing.assert_array_equal(flushed, plain)
    # and there the hidden layer's values were subnormal, unflushed
    tiny, found = torch.finfo(torch.float32).tiny, 0
    saved = parameters_to_vector(model.parameters()).detach().clone()
    try:
        with torch.no_grad():
            for a, b in grid_points(kw["extent"], kw["resolution"])[2]:
                vector_to_parameters(plane.point(a, b), model.parameters())
                hidden = model[:2](x)
                found += int(((hidden > 0) & (hidden < tiny)).sum())
    finally:
        vector_to_parameters(saved, model.parameters())
    assert found > 0


def test_trainer_surface_matches_the_system_potential_on_the_batch_held():
    cfg = phviz.make_config(
        "default", device="cpu", dtype="float64", batch_size=32, weight_decay=0.2
    )
    trainer = phviz.Trainer(cfg)
    trainer.advance(3)  # holds a mini-batch now
    theta = trainer.xi[: trainer.system.dim]
    plane = Plane.random(trainer.system, theta, seed=0)
    for batch in ("current", "train"):
        _, _, z = trainer_surface(trainer, plane, extent=(-1, 1, -1, 1), resolution=3, batch=batch)
        if batch == "current":
            expected = float(trainer.system.potential(theta))
        else:
            ds = trainer.dataset
            loss = float(ds.loss_fn(trainer.system.forward(theta, ds.x_train), ds.y_train))
            expected = loss + 0.1 * float(theta @ theta)
        assert z[1, 1] == pytest.approx(expected, rel=1e-10)


# ----------------------------------------------------------------- projection
def test_points_in_the_plane_project_back_exactly():
    plane = random_plane(9, seed=5)
    xy = np.array([[0.0, 0.0], [1.0, -2.0], [3.5, 0.25], [-7.0, 11.0]])
    projection = plane.project(plane.points(xy))
    np.testing.assert_allclose(projection.xy, xy, atol=1e-12)
    np.testing.assert_allclose(projection.off_plane, 0.0, atol=1e-12)


def test_off_plane_distance_of_a_move_along_the_normal_equals_the_move():
    plane = random_plane(9, seed=6)
    normal = torch.randn(9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.stack([plane.d1, plane.d2, normal], 1))
    normal = q[:, 2]  # unit, orthogonal to d1 and d2
    base = plane.point(0.7, -1.3)
    for move in (0.0, 0.5, -2.0, 10.0):
        p = plane.project(base + move * normal)
        np.testing.assert_allclose(p.xy[0], [0.7, -1.3], atol=1e-12)
        assert p.off_plane[0] == pytest.approx(abs(move), abs=1e-12)


def test_profile_shows_the_gap_of_a_point_off_the_plane():
    model, x, y = quadratic_problem()
    potential = Potential(model, F.mse_loss, x, y)
    plane = random_plane(4, seed=7)
    on = plane.points([[0.1, 0.2], [-0.3, 0.4]])
    profile = potential.profile(plane, on)
    np.testing.assert_allclose(profile.actual, profile.on_plane, rtol=1e-12)
    off = plane.point(0.1, 0.2) + torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    profile = potential.profile(plane, off)
    assert profile.off_plane[0] > 0
    assert profile.actual[0] == pytest.approx(float(potential(off)[0]))
    assert profile.on_plane[0] == pytest.approx(
        float(potential(plane.point(*profile.xy[0]))[0]), rel=1e-12
    )
    assert abs(profile.actual[0] - profile.on_plane[0]) > 1e-3


# --------------------------------------------------------------------- planes
def test_filter_normalised_directions_match_the_weights_per_filter():
    model = small_mlp()
    plane = Plane.random(model, seed=11)
    theta = parameters_to_vector(model.parameters()).detach()
    torch.testing.assert_close(plane.origin, theta)
    layout = phviz.dynamics.ParameterLayout(model)
    for d in (plane.d1, plane.d2):
        for name, block, w in zip(
            layout.names, layout.unflatten(d), layout.unflatten(theta), strict=True
        ):
            if name.endswith("bias"):
                assert torch.count_nonzero(block) == 0
            else:
                torch.testing.assert_close(block.norm(dim=1), w.norm(dim=1), rtol=1e-12, atol=0)
    again = Plane.random(model, theta, seed=11)
    torch.testing.assert_close(again.d1, plane.d1)
    assert not torch.allclose(Plane.random(model, seed=12).d1, plane.d1)


def test_pca_plane_of_a_planar_path_captures_all_its_variance():
    g = torch.Generator().manual_seed(0)
    for n, n_points in ((40, 50), (300, 700)):  # exact SVD, then the randomised one
        base, u, v = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(3))
        t = torch.linspace(0, 6, n_points, dtype=torch.float64)[:, None]
        path = base + torch.cos(t) * u + (0.2 * t**2) * v
        plane = Plane.from_trajectory(path)
        assert plane.explained == pytest.approx(1.0, abs=1e-10)
        torch.testing.assert_close(plane.origin, path[-1])
        projection = plane.project(path)
        np.testing.assert_allclose(projection.off_plane, 0.0, atol=1e-8)
        # orthonormal directions: distances along the path are kept
        np.testing.assert_allclose(
            np.linalg.norm(projection.xy[0] - projection.xy[-1]),
            float((path[0] - path[-1]).norm()),
            rtol=1e-10,
        )


def test_pca_explained_share_of_a_known_spread():
    # variances 2·9, 2·4 and 2·1 along three axes: the plane keeps (18 + 8) / 28
    e = torch.eye(5, dtype=torch.float64)
    path = torch.stack([3 * e[0], -3 * e[0], 2 * e[1], -2 * e[1], e[2], -e[2]]) + 1.0
    plane = Plane.from_trajectory(path, reference=torch.ones(5, dtype=torch.float64))
    assert plane.explained == pytest.approx(26 / 28, rel=1e-12)
    assert abs(float(plane.d1 @ e[0])) == pytest.approx(1.0)
    assert abs(float(plane.d2 @ e[1])) == pytest.approx(1.0)


def test_randomised_pca_plane_is_the_exact_one():
    # a random walk in 300 dimensions: 200 points, past the exact SVD's size
    g = torch.Generator().manual_seed(4)
    path = torch.randn(200, 300, generator=g, dtype=torch.float64).cumsum(0)
    plane = Plane.from_trajectory(path)
    centred = path - path.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    cosines = torch.linalg.svdvals(torch.stack([plane.d1, plane.d2]) @ vt[:2].T)
    torch.testing.assert_close(cosines, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-10)
    assert plane.explained == pytest.approx(float((s[:2] ** 2).sum() / (s**2).sum()), rel=1e-10)


def test_pca_plane_of_a_single_point_is_completed():
    plane = Plane.from_trajectory(np.ones((1, 6)))
    assert plane.explained == 1.0
    gram = torch.stack([plane.d1, plane.d2]) @ torch.stack([plane.d1, plane.d2]).T
    torch.testing.assert_close(gram, torch.eye(2, dtype=torch.float64))


def test_coordinates_plane_has_the_parameters_as_axes():
    model = phviz.build_model(2, 2, architecture="linear", seed=0, dtype=torch.float64)
    theta = parameters_to_vector(model.parameters()).detach()
    plane = Plane.coordinates(theta, "w11", "w12", layout=model)
    assert plane.labels == ("w11", "w12") and plane.indices == (0, 1)
    p = plane.point(0.25, -4.0)
    expected = theta.clone()
    expected[0], expected[1] = 0.25, -4.0
    torch.testing.assert_close(p, expected)
    projection = plane.project(theta)
    np.testing.assert_allclose(projection.xy[0], theta[:2].numpy(), atol=1e-15)
    assert projection.off_plane[0] == 0.0
    numbered = Plane.coordinates(theta, 2, 5)
    assert numbered.labels == ("θ[2]", "θ[5]")


def test_parameter_names_of_the_paper_linear_model():
    model = phviz.build_model(2, 2, architecture="linear", seed=0)  # "0.weight", "0.bias"
    assert [parameter_index(model, k) for k in ("w11", "w12", "w21", "w22")] == [0, 1, 2, 3]
    assert parameter_index(model, "b2") == 5
    assert parameter_index(model, "0.weight[1, 0]") == 2
    assert parameter_index(model, ("0.bias", 1)) == 5
    assert parameter_index(model, 4) == 4
    for i in range(6):
        assert parameter_index(model, parameter_label(model, i)) == i
    assert parameter_label(model, 3) == "0.weight[1, 1]"


def test_extent_around_pads_by_the_margin():
    pts = np.array([[0.0, 0.0], [2.0, 1.0]])
    assert extent_around(pts, margin=0.25) == (-0.5, 2.5, -0.5, 1.5)
    assert extent_around(pts, margin=0.25, square=True) == (-0.5, 2.5, -1.0, 2.0)
    assert extent_around([[1.0, 2.0]], margin=0.25, min_span=1.0) == (0.25, 1.75, 1.25, 2.75)
    assert extent_around(pts, margin=0.25, per_axis=True) == (-0.5, 2.5, -0.25, 1.25)


def test_grid_points_are_row_major():
    xs, ys, points = grid_points((0.0, 1.0, -1.0, 1.0), (3, 5))
    np.testing.assert_array_equal(xs, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ys, [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert points.shape == (15, 2)
    np.testing.assert_array_equal(points[1 * 3 + 2], [xs[2], ys[1]])


# ------------------------------------------------------------ phase portraits
def test_phase_portrait_energy_equals_the_hamiltonian():
    cfg = phviz.make_config(
        "default", device="cpu", dtype="float64", inertia=2.0, weight_decay=0.1, potential_gain=1.5
    )
    trainer = phviz.Trainer(cfg)
    trainer.advance(2)
    system = trainer.system
    theta = trainer.xi[: system.dim].clone()
    index = 7
    qs, ps, h = trainer_phase_portrait(
        trainer, index, q_extent=(-1.0, 2.0), p_extent=(-0.5, 0.5), resolution=(6, 5)
    )
    assert h.shape == (5, 6)
    for a in (0, 3, 4):
        for b in (0, 2, 5):
            t = theta.clone()
            t[index] = qs[b]
            p = torch.zeros_like(theta)
            p[index] = ps[a]
            xi = torch.cat([t, p])
            assert h[a, b] == pytest.approx(float(system.hamiltonian(xi)), rel=1e-10)


def test_phase_curve_reads_the_tracked_coordinate():
    trainer = phviz.Trainer(phviz.make_config("paper-blobs", device="cpu", n_tracked=3))
    recs = [trainer.last, *trainer.advance(3)]
    index = int(trainer.tracked[1])
    q, p = phase_curve(recs, index, trainer.tracked)
    np.testing.assert_array_equal(q, [r.theta[index] for r in recs])
    assert p[0] == 0.0 and q.shape == p.shape == (4,)
    np.testing.assert_allclose(p[-1], float(trainer.xi[trainer.system.dim + index]), rtol=1e-6)
    untracked = next(i for i in range(6) if i not in trainer.tracked)
    with pytest.raises(ValueError, match="not tracked"):
        phase_curve(recs, untracked, trainer.tracked)


def test_phase_portrait_of_a_quadratic_is_closed_form():
    model, x, y = quadratic_problem()
    potential = Potential(model, F.mse_loss, x, y)
    theta = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64)
    qs, ps, h = phase_portrait(
        potential, theta, 2, q_extent=(-1, 1), p_extent=(-2, 2), resolution=4, inertia=0.5
    )
    xa = np.c_[x.numpy(), np.ones(len(x))]
    for a, p in enumerate(ps):
        for b, q in enumerate(qs):
            t = theta.numpy().copy()
            t[2] = q
            expected = np.mean((1.5 * xa @ t - y.numpy()) ** 2) + p * p / (2 * 0.5)
            assert h[a, b] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------- window
def window_problem():
    model, x, y = quadratic_problem()
    return Potential(model, F.mse_loss, x, y)


def records(thetas, t0=0.0):
    return [SimpleNamespace(theta=np.asarray(t), t=t0 + k) for k, t in enumerate(thetas)]


def test_window_refreshes_when_the_path_leaves_and_reprojects_it():
    window = LandscapeWindow(window_problem(), resolution=5, min_seconds=0.0, margin=0.5)
    g = np.random.default_rng(0)
    u, v = g.standard_normal(4), g.standard_normal(4)
    path = [0.1 * np.cos(s) * u + 0.1 * np.sin(s) * v for s in np.linspace(0, 5, 20)]
    assert window.update(records(path[:10])) is True
    assert window.state.reason == "start" and window.version == 1
    first_plane = window.plane
    for k in range(10, 20):  # the circle stays in its plane and (margins) its window
        window.update(records(path[k : k + 1], t0=k))
    np.testing.assert_allclose(window.off_plane, 0.0, atol=1e-6)
    far = path[-1] + 5.0 * u
    assert window.update(records([far], t0=20)) is True
    assert window.state.reason in ("path left the window", "path left the plane")
    assert window.version >= 2 and window.plane is not first_plane
    assert float(window.plane.d1 @ first_plane.d1) >= 0  # no mirror flip between planes
    assert float(window.plane.d2 @ first_plane.d2) >= 0
    stored = np.array([*path, far], dtype=np.float32)
    again = window.plane.project(stored)
    np.testing.assert_allclose(window.path_xy, again.xy, atol=1e-12)
    np.testing.assert_allclose(window.off_plane, again.off_plane, atol=1e-12)
    np.testing.assert_array_equal(window.path_t, np.arange(21.0))
    xmin, xmax, ymin, ymax = window.extent
    assert (window.path_xy[:, 0] >= xmin).all() and (window.path_xy[:, 0] <= xmax).all()
    assert (window.path_xy[:, 1] >= ymin).all() and (window.path_xy[:, 1] <= ymax).all()
    xs, ys, z = window.surface
    assert z.shape == (5, 5) and (xs[0], xs[-1]) == (xmin, xmax)


def test_window_surface_agrees_with_the_path_it_shows():
    potential = window_problem()
    window = LandscapeWindow(potential, resolution=3, min_seconds=0.0)
    g = np.random.default_rng(1)
    u, v = g.standard_normal(4), g.standard_normal(4)
    window.update([0.3 * s * u + 0.1 * s * s * v for s in np.linspace(0, 1, 12)])
    profile = window.profile()
    np.testing.assert_allclose(profile.off_plane, 0.0, atol=1e-6)
    np.testing.assert_allclose(profile.actual, profile.on_plane, rtol=1e-5)
    assert window.explained == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(window.path_xy[-1], 0.0, atol=1e-6)  # the head is the origin
    xs, ys, z = window.surface  # a quadratic loss: the surface is known exactly
    assert z.shape == (3, 3)
    plane = window.plane
    o, d1, d2 = (v.numpy() for v in (plane.origin, plane.d1, plane.d2))
    model, x, y = quadratic_problem()
    xa = np.c_[x.numpy(), np.ones(len(x))]
    for i, yy in enumerate(ys):
        for j, xx in enumerate(xs):
            theta = o + xx * d1 + yy * d2
            assert z[i, j] == pytest.approx(np.mean((1.5 * xa @ theta - y.numpy()) ** 2), rel=1e-12)


def test_window_starts_again_when_time_goes_back():
    window = LandscapeWindow(window_problem(), resolution=3, min_seconds=0.0)
    window.update(records(np.zeros((3, 4)) + np.arange(3)[:, None] * 0.01))
    assert len(window.path_xy) == 3
    window.update(records(np.ones((2, 4))))  # t = 0 again: a reset run
    assert len(window.path_xy) == 2 and list(window.path_t) == [0.0, 1.0]


def test_window_thins_a_long_path_and_keeps_the_newest_point():
    window = LandscapeWindow(window_problem(), resolution=3, max_points=10, min_seconds=1e9)
    path = np.linspace(0, 1, 25)[:, None] * np.ones(4)
    for k in range(25):
        window.update(records(path[k : k + 1], t0=k))
    assert len(window.path_t) <= 10 and window.path_t[-1] == 24.0
    np.testing.assert_allclose(
        window.path_xy, window.plane.project(path[window.path_t.astype(int)]).xy, atol=1e-6
    )


def test_window_on_a_trainer_with_each_kind_of_plane():
    trainer = phviz.Trainer(phviz.make_config("paper-blobs", device="cpu", horizon=1.0))
    for kind in ("pca", "random", "coordinates"):
        trainer.reset()
        window = LandscapeWindow(
            trainer, kind=kind, coordinates=("w11", "w12"), resolution=4, min_seconds=0.0
        )
        fed = [trainer.last]
        window.update(trainer.last)
        for _ in range(3):
            fed += trainer.advance(2)
            window.update(fed[-2:])
        assert window.plane.kind == kind and len(window.path_xy) == 7
        thetas = np.stack([r.theta for r in fed])
        np.testing.assert_allclose(window.path_xy, window.plane.project(thetas).xy, atol=1e-9)
        if kind == "coordinates":
            assert window.plane.labels == ("w11", "w12")
            np.testing.assert_allclose(window.path_xy, thetas[:, :2], atol=1e-7)


def test_window_state_read_from_another_thread_is_always_whole():
    import threading

    window = LandscapeWindow(window_problem(), resolution=4, min_seconds=0.0, margin=0.0)
    g = np.random.default_rng(2)
    steps = g.standard_normal((150, 4)) * 0.05
    path = np.cumsum(steps, 0)  # a random walk: refreshes often
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            st = window.state
            seen.append(
                len(st.path_xy) == len(st.path_t) == len(st.off_plane)
                and (st.plane is None or st.Z.shape == (len(st.ys), len(st.xs)))
            )

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(len(path)):
            window.update(records(path[k : k + 1], t0=k))
    finally:
        done.set()
        reader.join()
    assert seen and all(seen)
    assert window.version > 1 and len(window.path_t) == 150


# ----------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    model, x, y = quadratic_problem()
    plane = random_plane(4)
    with pytest.raises(ValueError, match="lengths"):
        Plane(torch.zeros(4), torch.ones(4), torch.ones(3))
    with pytest.raises(ValueError, match="parallel"):
        Plane(torch.zeros(4), torch.ones(4), 2 * torch.ones(4))
    with pytest.raises(ValueError, match="resolution"):
        loss_surface(model, F.mse_loss, x, y, plane, resolution=1)
    with pytest.raises(ValueError, match="empty"):
        loss_surface(model, F.mse_loss, x, y, plane, extent=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        loss_surface(model, F.mse_loss, x, y, plane, extent=(0.0, np.nan, 0.0, 1.0))
    with pytest.raises(ValueError, match="chunk_size"):
        loss_surface(model, F.mse_loss, x, y, plane, chunk_size=0)
    with pytest.raises(ValueError, match="length 5"):
        plane.project(torch.zeros(5))
    with pytest.raises(ValueError, match="parameters"):
        loss_surface(model, F.mse_loss, x, y, random_plane(6))
    with pytest.raises(ValueError, match="targets"):
        Potential(model, F.mse_loss, x, y[:-1])
    with pytest.raises(ValueError, match="potential_gain"):
        Potential(model, F.mse_loss, x, y, potential_gain=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        Potential(model, F.mse_loss, x, y, weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        Potential(model, F.mse_loss, x, y, weight_decay=torch.ones(3))
    with pytest.raises(ValueError, match="same parameter"):
        Plane.coordinates(torch.zeros(4), 1, 1)
    with pytest.raises(ValueError, match="w33"):
        parameter_index(phviz.build_model(2, 2, architecture="linear"), "w33")
    with pytest.raises(ValueError, match="at least one finite"):
        extent_around(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="kind"):
        LandscapeWindow(Potential(model, F.mse_loss, x, y), kind="spiral")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_surface_on_cuda_equals_cpu():
    model = small_mlp(torch.float32)
    x = torch.randn(50, 3)
    labels = torch.randint(0, 2, (50,))
    plane = Plane.random(model, seed=0)
    _, _, cpu = loss_surface(model, F.cross_entropy, x, labels, plane, resolution=11)
    _, _, gpu = loss_surface(
        model.cuda(), F.cross_entropy, x.cuda(), labels.cuda(), plane.to("cuda"), resolution=11
    )
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)
