"""The vector field against exact answers: the linear case, passivity, the ledger."""

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from phviz import PortHamiltonianSystem
from phviz.data import make_dataset
from phviz.dynamics import critical_damping
from phviz.models import build_model

torch.set_num_threads(1)


def linear_problem(dtype=torch.float64):
    """A linear model with squared error: the loss is quadratic in θ."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, generator=g, dtype=dtype)
    y = torch.randn(40, 2, generator=g, dtype=dtype)
    model = build_model(3, 2, architecture="linear", seed=1, dtype=dtype)
    return model, x, y


def quadratic_form(system):
    """A, r with ∇L(θ) = Aθ − r, exactly (the loss is quadratic)."""
    n = system.dim
    theta0 = torch.zeros(n, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(system.loss, theta0)
    r = -torch.autograd.grad(system.loss(theta0.requires_grad_()), theta0)[0]
    return hessian, r


def closed_form(system, xi0, ts, damping, inverse_inertia, a, c):
    """ξ(t) = expm(tK̃)[ξ0; 1] for the affine system ξ̇ = Kξ + f."""
    n = system.dim
    A, r = quadratic_form(system)
    K = torch.zeros(2 * n + 1, 2 * n + 1, dtype=torch.float64)
    minv = torch.diag(inverse_inertia * torch.ones(n, dtype=torch.float64))
    bdiag = torch.diag(damping * torch.ones(n, dtype=torch.float64))
    K[:n, n : 2 * n] = minv
    K[n : 2 * n, :n] = -(a * A + c * torch.eye(n, dtype=torch.float64))
    K[n : 2 * n, n : 2 * n] = -bdiag @ minv
    K[n : 2 * n, -1] = a * r
    z0 = torch.cat([xi0, torch.ones(1, dtype=torch.float64)])
    return torch.stack([torch.linalg.matrix_exp(t * K) @ z0 for t in ts])[:, :-1]


@pytest.mark.parametrize("regime", ["under", "critical", "over"])
def test_linear_case_matches_matrix_exponential(regime):
    model, x, y = linear_problem()
    system = PortHamiltonianSystem(model, torch.nn.functional.mse_loss)
    system.set_batch(x, y)
    A, _ = quadratic_form(system)
    lam = float(torch.linalg.eigvalsh(A).max())
    a, c = 1.5, 0.1
    g = torch.Generator().manual_seed(0)
    inertia = 0.5 + 1.5 * torch.rand(system.dim, generator=g, dtype=torch.float64)
    critical = 2 * math.sqrt(lam * a * 1.0)
    damping = {"under": 0.1 * critical, "critical": critical, "over": 5 * critical}[regime]
    system.set_gains(damping=damping, inertia=inertia, potential_gain=a, weight_decay=c)
    xi0 = system.initial_state(momentum=torch.randn(system.dim, generator=g, dtype=torch.float64))
    ts = torch.linspace(0, 6, 13, dtype=torch.float64)
    numeric = odeint(system, xi0, ts, method="dopri5", rtol=1e-11, atol=1e-12)
    exact = closed_form(system, xi0, ts, damping, 1.0 / inertia, a, c)
    assert torch.allclose(numeric, exact, rtol=1e-7, atol=1e-9)
    # the solution moves: the comparison is not between two constants
    assert (exact[-1] - exact[0]).abs().max() > 1e-2


def test_critical_damping_helper_matches_formula():
    # B = 2√((a·λ + c)·m)
    assert critical_damping(3.0, inertia=0.5, potential_gain=2.0) == pytest.approx(
        2 * math.sqrt(3.0)
    )


def moons_system(dtype=torch.float64, **gains):
    ds = make_dataset("moons", n_samples=120, seed=2).to(dtype=dtype)
    model = build_model(2, 2, hidden="8,8", activation="tanh", seed=0, dtype=dtype)
    system = PortHamiltonianSystem(model, ds.loss_fn, **gains)
    system.set_batch(ds.x_train, ds.y_train)
    return system


def test_hamiltonian_never_increases_without_port():
    system = moons_system(damping=0.3, inertia=0.7, potential_gain=2.0, weight_decay=0.01)
    xi0 = system.initial_state()
    ts = torch.linspace(0, 20, 401, dtype=torch.float64)
    xs = odeint(system, xi0, ts, rtol=1e-9, atol=1e-10)
    h = torch.stack([system.hamiltonian(x) for x in xs])
    assert float(h[-1]) < 0.7 * float(h[0])  # energy really drains
    assert float(torch.diff(h).max()) < 1e-8


def ledger(system, xi0, horizon, port=None):
    """H(T) − H(0), ∫vᵀBv, ∫vᵀu integrated by the same solver."""
    system.port = port
    y0 = torch.cat([xi0, xi0.new_zeros(2)])
    ts = torch.tensor([0.0, horizon], dtype=xi0.dtype)
    y = odeint(system.ledger_field, y0, ts, rtol=1e-9, atol=1e-11)[-1]
    xi = y[:-2]
    return float(system.hamiltonian(xi) - system.hamiltonian(xi0)), float(y[-2]), float(y[-1])


def test_energy_ledger_balances_without_port():
    system = moons_system(damping=0.5)
    xi0 = system.initial_state(momentum=0.3 * torch.ones(system.dim, dtype=torch.float64))
    dh, dissipated, supplied = ledger(system, xi0, 10.0)
    assert supplied == 0.0
    assert dissipated > 0.05
    assert abs(dh + dissipated) < 1e-7


@pytest.mark.parametrize("kind", ["constant", "callable"])
def test_energy_ledger_balances_with_a_port_force(kind):
    system = moons_system(damping=0.5)
    u = 0.2 * torch.linspace(-1, 1, system.dim, dtype=torch.float64)
    port = u if kind == "constant" else (lambda t, theta, p: u * torch.cos(t))
    xi0 = system.initial_state()
    dh, dissipated, supplied = ledger(system, xi0, 8.0, port=port)
    assert abs(supplied) > 1e-3  # the port did work
    assert abs(dh + dissipated - supplied) < 1e-7
    # the field includes the force: ṗ at p = 0 equals −∂H/∂θ + u
    system.port = port
    dp = system(torch.tensor(0.0, dtype=torch.float64), xi0)[system.dim :]
    grad = system.potential_gradient(xi0[: system.dim])
    assert torch.allclose(dp, -grad + u)


def test_convex_problem_converges_to_a_minimum():
    model, x, y = linear_problem()
    system = PortHamiltonianSystem(model, torch.nn.functional.mse_loss, damping=1.0)
    system.set_batch(x, y)
    xi0 = system.initial_state()
    xs = odeint(system, xi0, torch.tensor([0.0, 80.0], dtype=torch.float64), rtol=1e-10)
    theta, p = system.split(xs[-1])
    grad0 = system.potential_gradient(xi0[: system.dim]).norm()
    assert float(system.potential_gradient(theta).norm()) < 1e-6 * float(grad0) + 1e-9
    assert float(p.norm()) < 1e-6
    # and the minimum is least squares' own
    X = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    solution = torch.linalg.lstsq(X, y).solution  # (4, 2): rows W^T then b
    W, b = model_parts(system, theta)
    assert torch.allclose(W.T, solution[:3], atol=1e-6)
    assert torch.allclose(b, solution[3], atol=1e-6)


def model_parts(system, theta):
    W, b = system.layout.unflatten(theta)
    return W, b


def test_energy_parts_and_dissipation():
    system = moons_system(damping=0.4, inertia=2.0, potential_gain=3.0, weight_decay=0.5)
    xi = system.initial_state(momentum=torch.full((system.dim,), 0.5, dtype=torch.float64))
    theta, p = system.split(xi)
    e = system.energy(xi)
    assert float(e.kinetic) == pytest.approx(0.5 * float((p * p).sum()) / 2.0)
    expected_potential = 3.0 * float(system.loss(theta)) + 0.25 * float((theta * theta).sum())
    assert float(e.potential) == pytest.approx(expected_potential)
    assert float(e.total) == pytest.approx(float(e.kinetic + e.potential))
    assert float(system.dissipation(xi)) == pytest.approx(0.4 * float((p / 2.0).pow(2).sum()))


def test_every_route_gives_the_same_gradient():
    """phviz's MLP takes NumPy (Arrays) or its written-out backward pass (HandWritten);
    any module takes autograd: the same ∇L to rounding, and the same forward pass."""
    from phviz.routes import Arrays, Autograd, HandWritten

    system = moons_system()
    assert isinstance(system.route, Arrays)
    theta = system.initial_state()[: system.dim] + 0.1
    expected = system.route.loss_and_gradient(theta)
    for kind in (Autograd, HandWritten):
        route = kind(system.model, system.loss_fn, system.layout)
        route.hold(system.inputs, system.targets)
        loss, grad = route.loss_and_gradient(theta)
        assert float(loss) == pytest.approx(float(expected[0]), rel=1e-12)
        torch.testing.assert_close(grad, expected[1], rtol=1e-12, atol=1e-14)
    out = np.empty(system.dim)
    loss = system.route.gradient_into(theta.numpy(), 2.0, out)
    assert loss == pytest.approx(float(expected[0]), rel=1e-12)
    torch.testing.assert_close(torch.from_numpy(out), 2.0 * expected[1], rtol=1e-12, atol=1e-14)
    x = system.inputs[:7]
    params = dict(zip(system.layout.names, system.layout.unflatten(theta), strict=True))
    general = torch.func.functional_call(system.model, params, (x,))
    assert torch.allclose(system.forward(theta, x), general, rtol=1e-12)


def test_the_hand_written_gradient_of_an_ensemble_is_each_members_own():
    """Rows of θ (members) through batched matrix products: each row's L and ∇L."""
    from phviz.losses import loss_function
    from phviz.routes import HandWritten

    g = torch.Generator().manual_seed(6)
    for loss in ("mse", "mse_onehot", "cross_entropy"):
        model = build_model(2, 3, hidden="5,4", activation="softplus", dtype=torch.float64)
        route = HandWritten(model, loss_function(loss), PortHamiltonianSystem(model, mse).layout)
        x = torch.randn(9, 2, generator=g, dtype=torch.float64)
        y = torch.randn(9, 3, generator=g, dtype=torch.float64)
        y = y if loss == "mse" else torch.randint(0, 3, (9,), generator=g)
        route.hold(x, y)
        n = route.layout.size
        thetas = torch.randn(4, n, generator=g, dtype=torch.float64)
        losses, grads = route.loss_and_gradient(thetas)
        assert losses.shape == (4,) and grads.shape == (4, n)
        for k in range(4):
            one_loss, one_grad = route.loss_and_gradient(thetas[k])
            assert float(losses[k]) == pytest.approx(float(one_loss), rel=1e-12)
            torch.testing.assert_close(grads[k], one_grad, rtol=1e-12, atol=1e-14)


def mse(outputs, targets):
    return torch.nn.functional.mse_loss(outputs, targets)


def array_gradient(model, x, targets, loss):
    """phviz's NumPy gradient of ``model`` holding the batch (x, targets)."""
    from phviz.arrays import ArrayGradient
    from phviz.losses import loss_function

    prepare, output_gradient = loss_function(loss).array_form
    gradient = ArrayGradient(model, len(x), x.numpy().dtype, output_gradient)
    gradient.hold(x.numpy(), prepare(targets.numpy(), model.sizes[-1], x.numpy().dtype))
    return gradient


@pytest.mark.parametrize("activation", ["softplus", "tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("loss", ["mse", "mse_onehot", "cross_entropy"])
def test_mlp_hand_written_gradient_equals_autograd(activation, loss):
    """phviz's MLP and losses take ∇L without autograd: the same numbers as autograd's."""
    from phviz.losses import loss_function

    g = torch.Generator().manual_seed(3)
    model = build_model(2, 3, hidden="5,4", activation=activation, dtype=torch.float64)
    system = PortHamiltonianSystem(model, loss_function(loss), potential_gain=1.7)
    x = 3 * torch.randn(9, 2, generator=g, dtype=torch.float64)
    if loss == "mse":
        y = torch.randn(9, 3, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, 3, (9,), generator=g)
    system.set_batch(x, y)
    theta = system.initial_state()[: system.dim] + 0.1
    value, grad = system.loss_and_gradient(theta)
    leaf = theta.clone().requires_grad_(True)
    expected = system.loss(leaf)
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert float(value) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(grad, 1.7 * expected_grad, rtol=1e-12, atol=1e-14)
    # the NumPy form, its buffers kept, that small models on the CPU step with
    gradient = array_gradient(model, x, y, loss)
    kept = gradient(theta.numpy(), -1.7, np.empty(system.dim))
    torch.testing.assert_close(torch.from_numpy(kept), -1.7 * expected_grad, rtol=1e-12, atol=1e-14)
    assert gradient.loss == pytest.approx(float(expected.detach()), rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_linear_model_kept_gradient_equals_autograd(loss):
    """No hidden layer: [W | b] alone acts on the inputs and their row of ones."""
    from phviz.losses import loss_function

    g = torch.Generator().manual_seed(4)
    model = build_model(2, 3, architecture="linear", dtype=torch.float64)
    system = PortHamiltonianSystem(model, loss_function(loss))
    x = 3 * torch.randn(11, 2, generator=g, dtype=torch.float64)
    if loss == "mse":
        y = torch.randn(11, 3, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, 3, (11,), generator=g)
    system.set_batch(x, y)
    theta = system.initial_state()[: system.dim] + 0.1
    leaf = theta.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(system.loss(leaf), leaf)
    gradient = array_gradient(model, x, y, loss)
    kept = gradient(theta.numpy(), 0.5, np.empty(system.dim))
    torch.testing.assert_close(torch.from_numpy(kept), 0.5 * expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_past_its_threshold_in_numpy_is_torchs(dtype):
    """Where βz > 20 torch's softplus is z itself, its slope 1: the NumPy gradient too."""
    from phviz.losses import loss_function

    g = torch.Generator().manual_seed(5)
    model = build_model(2, 2, hidden="6", activation="softplus", softplus_beta=10.0, dtype=dtype)
    system = PortHamiltonianSystem(model, loss_function("mse"))
    x = 4 * torch.randn(30, 2, generator=g, dtype=dtype)
    y = torch.randn(30, 2, generator=g, dtype=dtype)
    system.set_batch(x, y)
    theta = system.initial_state()[: system.dim] * 3
    beta_z = 10 * (x @ theta[:12].view(6, 2).T + theta[12:18])
    assert (beta_z > 20).any() and (beta_z < 20).any()
    leaf = theta.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(system.loss(leaf), leaf)
    gradient = array_gradient(model, x, y, "mse")
    with np.errstate(over="ignore", invalid="ignore"):  # as in a solve: e^βz overflows here
        grad = gradient(theta.numpy(), 1.0, np.empty(system.dim, dtype=x.numpy().dtype))
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else {}
    torch.testing.assert_close(torch.from_numpy(grad), expected, **tolerance)


@pytest.mark.parametrize("port", [None, "constant", "callable"])
def test_numpy_ledger_field_equals_the_torch_one(port):
    """The field phviz's dopri5 integrates, for phviz's MLP (NumPy) and any other module."""
    system = moons_system(weight_decay=0.03, damping=0.7, inertia=0.5)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(system.dim, generator=g, dtype=torch.float64)
    system.port = {None: None, "constant": u, "callable": lambda t, theta, p: u * torch.cos(t)}[
        port
    ]
    xi = system.initial_state(torch.rand(system.dim, generator=g, dtype=torch.float64))
    y = torch.cat([xi, xi.new_zeros(2)])
    field = system.array_ledger_field()
    out = np.empty(y.numel())
    field(np.float64(0.3), y.numpy(), out)
    expected = system.ledger_field(torch.tensor(0.3, dtype=torch.float64), y)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-12, atol=1e-14)


def test_any_module_works_through_functional_call():
    """A module phviz did not build (with a buffer) runs as it is."""

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1, dtype=torch.float64)
            self.register_buffer("scale", torch.tensor(2.0, dtype=torch.float64))

        def forward(self, x):
            return self.scale * self.lin(x)

    model = Scaled()
    system = PortHamiltonianSystem(model, torch.nn.functional.mse_loss)
    x = torch.randn(10, 2, dtype=torch.float64)
    y = torch.randn(10, 1, dtype=torch.float64)
    system.set_batch(x, y)
    xi = system.initial_state()
    before = [p.detach().clone() for p in model.parameters()]
    xi1 = odeint(system, xi, torch.tensor([0.0, 1.0], dtype=torch.float64))[-1]
    system.write_to_model(xi1)
    loss_module = torch.nn.functional.mse_loss(model(x), y).detach()
    assert float(loss_module) == pytest.approx(float(system.loss(xi1[: system.dim]).detach()))
    assert float(loss_module) < float(
        torch.nn.functional.mse_loss(model.scale * (x @ before[0].T + before[1]), y)
    )


def test_a_layer_used_twice_and_weights_tied_across_layers():
    """functional_call sees each parameter once, and the model keeps its parameters."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(3, 3)
    reused = torch.nn.Sequential(
        torch.nn.Linear(2, 3),
        torch.nn.Tanh(),
        shared,
        torch.nn.Tanh(),
        shared,
        torch.nn.Linear(3, 1),
    ).double()
    tied = torch.nn.Sequential(
        torch.nn.Linear(2, 3),
        torch.nn.Tanh(),
        torch.nn.Linear(3, 3),
        torch.nn.Tanh(),
        torch.nn.Linear(3, 3),
        torch.nn.Linear(3, 1),
    )
    tied[4].weight = tied[2].weight
    tied.double()
    x = torch.randn(7, 2, dtype=torch.float64)
    for model in (reused, tied):
        system = PortHamiltonianSystem(model, torch.nn.functional.mse_loss)
        theta = system.initial_state()[: system.dim] * 1.5
        out = system.forward(theta, x)
        assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
        system.write_to_model(torch.cat([theta, torch.zeros_like(theta)]))
        with torch.no_grad():
            assert torch.allclose(out, model(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_follows_the_model_dtype(dtype):
    system = moons_system(dtype=dtype)
    xi = system.initial_state()
    assert xi.dtype == dtype and xi.shape == (2 * system.dim,)
    assert system(torch.tensor(0.0), xi).dtype == dtype


def test_per_layer_and_per_coordinate_gains():
    system = moons_system()
    system.set_gains(damping={"0": 2.0, "4.bias": 3.0}, inertia={"2.weight": 4.0})
    damping = system.damping
    for name, n in zip(system.layout.names, system.layout.numels, strict=True):
        s = system.layout.slice(name)
        # unnamed layers keep the gain in force (the system's default damping 1)
        expected = 2.0 if name.startswith("0.") else 3.0 if name == "4.bias" else 1.0
        assert torch.all(damping[s] == expected), name
        assert torch.all(system.inertia[s] == (4.0 if name == "2.weight" else 1.0))
        assert damping[s].numel() == n
    xi = system.initial_state(momentum=torch.ones(system.dim, dtype=torch.float64))
    v = 1.0 / system.inertia
    assert float(system.dissipation(xi)) == pytest.approx(float((damping * v * v).sum()))


def test_a_mapping_leaves_unnamed_layers_at_the_runs_scalar_gain():
    system = moons_system(damping=0.7, weight_decay=0.01)
    system.set_gains(damping={"0": 2.0}, weight_decay={"2.bias": 0.5})
    first = system.layout.slice("0.weight")
    last = system.layout.slice("4.weight")
    assert torch.all(system.damping[first] == 2.0)
    assert torch.all(system.damping[last] == 0.7)  # damped as before, never 0
    assert torch.all(system.weight_decay[last] == 0.01)
    system.set_gains(damping={"4": 3.0})  # a second mapping changes only what it names
    assert torch.all(system.damping[first] == 2.0) and torch.all(system.damping[last] == 3.0)


def test_critical_damping_counts_weight_decay():
    gains = dict(inertia=0.5, potential_gain=2.0)
    assert critical_damping(1.5, weight_decay=0.3, **gains) == pytest.approx(2 * math.sqrt(1.65))
    assert critical_damping(1.5, **gains) == pytest.approx(2 * math.sqrt(1.5))
    assert critical_damping(-1.0, **gains) == 0.0  # a saddle direction never oscillates


@pytest.mark.parametrize(
    "gains, message",
    [
        (dict(damping=-1.0), r"Invalid damping: -1\.0"),
        (dict(damping=float("nan")), "Invalid damping"),
        (dict(inertia=0.0), r"Invalid inertia: 0\.0"),
        (dict(inertia=-2), "Invalid inertia"),
        (dict(potential_gain=0.0), "Invalid potential_gain"),
        (dict(weight_decay=-0.1), r"Invalid weight_decay: -0\.1"),
        (dict(damping={"nope": 1.0}), "no parameter is named 'nope'"),
        (dict(damping={"0.weight": -1.0}), "Invalid damping for '0.weight'"),
        (dict(inertia=torch.ones(3)), r"Invalid inertia: a tensor gain needs shape"),
        (dict(damping=-torch.ones(114)), "Invalid damping at entry 0"),
    ],
)
def test_bad_gains_raise_value_error_naming_gain_and_value(gains, message):
    system = moons_system()
    before = system.damping, system.inertia
    with pytest.raises(ValueError, match=message):
        system.set_gains(**gains)
    assert (system.damping, system.inertia) == before  # nothing half-applied
    with pytest.raises(ValueError, match=message):
        PortHamiltonianSystem(system.model, system.loss_fn, **gains)


def test_bad_gain_types_raise_type_error():
    system = moons_system()
    with pytest.raises(TypeError, match="Invalid damping: 'high'"):
        system.set_gains(damping="high")
    with pytest.raises(TypeError, match="Unknown gain: 'friction'"):
        system.set_gains(friction=1.0)


def test_no_batch_is_a_clear_error():
    model, _, _ = linear_problem()
    system = PortHamiltonianSystem(model, torch.nn.functional.mse_loss)
    with pytest.raises(RuntimeError, match="set_batch"):
        system(0.0, system.initial_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_field_matches_cpu():
    system = moons_system(damping=0.5)
    xi = system.initial_state(momentum=torch.ones(system.dim, dtype=torch.float64))
    cpu = system(torch.tensor(0.0), xi)
    model = system.model.to("cuda")
    gpu_system = PortHamiltonianSystem(model, system.loss_fn, damping=0.5)
    gpu_system.set_batch(system.inputs, system.targets)
    gpu = gpu_system(torch.tensor(0.0), xi.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-10, atol=1e-12)


def test_a_users_module_gives_the_same_field_as_phviz_mlp_and_survives_zero_grad():
    from phviz.bench.core import users_module

    ds = make_dataset("duffing").to(dtype=torch.float64)
    module = users_module(seed=3).double()
    mlp = build_model(2, 2, hidden="16,16", activation="softplus", dtype=torch.float64)
    mlp.load_state_dict(module.state_dict())
    systems = [PortHamiltonianSystem(m, ds.loss_fn, damping=0.5) for m in (module, mlp)]
    for s in systems:
        s.set_batch(ds.x_train, ds.y_train)
    xi = systems[0].initial_state(torch.linspace(-1, 1, systems[0].dim, dtype=torch.float64))
    a, b = (s(torch.tensor(0.0), xi) for s in systems)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    module.zero_grad(set_to_none=True)  # drops the gradient views: they are bound again
    assert torch.equal(systems[0](torch.tensor(0.0), xi), a)
    # the gradient is the plain backward's
    systems[0].write_to_model(xi)
    module.zero_grad()
    ds.loss_fn(module(ds.x_train), ds.y_train).backward()
    plain = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
    assert torch.allclose(-a[systems[0].dim :] - 0.5 * xi[systems[0].dim :], plain)


def test_a_users_module_matches_phviz_mlp_with_every_gain_set_per_layer():
    """ṗ = −a∇L − cθ − BM⁻¹p by either path, with per-layer gains and weight decay."""
    from phviz.bench.core import users_module

    ds = make_dataset("duffing").to(dtype=torch.float64)
    module = users_module(seed=5).double()
    mlp = build_model(2, 2, hidden="16,16", activation="softplus", dtype=torch.float64)
    mlp.load_state_dict(module.state_dict())
    gains = dict(
        damping={"0": 2.0, "4.bias": 0.3},
        inertia={"2.weight": 4.0},
        potential_gain=1.7,
        weight_decay={"2": 0.05},
    )
    systems = [PortHamiltonianSystem(m, ds.loss_fn, **gains) for m in (module, mlp)]
    for s in systems:
        s.set_batch(ds.x_train, ds.y_train)
    xi = systems[0].initial_state(torch.linspace(-1, 1, systems[0].dim, dtype=torch.float64))
    a, b = (s(torch.tensor(0.0), xi) for s in systems)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)
    systems[0].set_gains(weight_decay=0.01, damping=0.0)  # scalar gains, the other branch
    systems[1].set_gains(weight_decay=0.01, damping=0.0)
    a, b = (s(torch.tensor(0.0), xi) for s in systems)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)


def test_a_sequential_runs_its_modules_directly_and_still_honours_hooks():
    from phviz.tracing import DirectForward

    torch.manual_seed(0)
    nn = torch.nn
    inner = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    model = nn.Sequential(inner, nn.Linear(8, 3)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    direct = DirectForward(model)
    assert [type(m) for m in direct.steps] == [nn.Linear, nn.Tanh, nn.Linear]
    assert torch.equal(direct(x), model(x))

    # a hook registered later, on a nested module or for every module, still runs
    calls = []
    handle = inner[1].register_forward_hook(lambda m, i, o: calls.append("tanh") or 2 * o)
    assert torch.equal(direct(x), model(x)) and calls == ["tanh", "tanh"]
    handle.remove()
    handle = nn.modules.module.register_module_forward_pre_hook(
        lambda m, i: calls.append(type(m).__name__)
    )
    try:
        direct(x)
    finally:
        handle.remove()
    assert calls[2:] == ["Sequential", "Sequential", "Linear", "Tanh", "Linear"]

    # a model that is not a plain Sequential is simply called
    class Twice(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    twice = Twice(nn.Linear(4, 2)).double()
    assert DirectForward(twice).steps is None
    assert torch.equal(DirectForward(twice)(x), twice(x))


def test_a_module_that_traces_to_a_chain_runs_its_steps_directly():
    from phviz.tracing import DirectForward

    nn, F = torch.nn, torch.nn.functional

    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.last = nn.Linear(4, 8), nn.Linear(8, 3)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            h = F.softplus(self.first(x), beta=3.0).tanh()
            if self.training:  # a branch fx takes as it finds it
                h = self.drop(h)
            return self.last(h * 2.0)

    torch.manual_seed(0)
    model = Own().double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    direct = DirectForward(model)
    assert direct.steps is not None and direct.plain
    assert torch.equal(direct(x), model(x))

    # traced in eval mode: in training mode the model is called, its dropout runs
    model.train()
    assert not direct.plain
    torch.manual_seed(1)
    dropped = direct(x)
    torch.manual_seed(1)
    assert torch.equal(dropped, model(x))
    model.eval()

    # a hook on a module the forward calls still runs
    calls = []
    handle = model.first.register_forward_hook(lambda *args: calls.append(1))
    try:
        assert not direct.plain and torch.equal(direct(x), model(x)) and calls == [1, 1]
    finally:
        handle.remove()
    assert direct.plain

    # a skip connection is no chain: the model is simply called
    class Skip(Own):
        def forward(self, x):
            h = torch.tanh(self.first(x))
            return self.last(h + h.sigmoid())

    skip = Skip().double().eval()
    assert DirectForward(skip).steps is None
    assert torch.equal(DirectForward(skip)(x), skip(x))

    # the training field's gradient is the model's
    system = PortHamiltonianSystem(model, F.mse_loss)
    target = torch.randn(5, 3, dtype=torch.float64)
    system.set_batch(x, target)
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    xi = torch.cat([theta, torch.zeros_like(theta)])
    field = system(torch.tensor(0.0), xi)
    model.zero_grad()
    F.mse_loss(model(x), target).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(-field[len(theta) :], system.potential_gain * grad, rtol=1e-12)
