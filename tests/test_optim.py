"""The discrete optimizer is heavy-ball momentum, step for step."""

import copy
import math

import pytest
import torch

from phviz.models import build_model
from phviz.optim import PortHamiltonianSGD

torch.set_num_threads(1)


def problem():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    y = (x[:, 0] * x[:, 1] > 0).long()
    return x, y


def train(model, optimizer, steps=60):
    x, y = problem()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "gains",
    [
        dict(damping=1.0, inertia=1.0, potential_gain=1.0, weight_decay=0.0),
        dict(damping=0.3, inertia=2.0, potential_gain=3.0, weight_decay=0.05),
    ],
)
def test_symplectic_euler_equals_sgd_with_momentum(gains):
    h = 0.5
    ph_model = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    sgd_model = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    ph = PortHamiltonianSGD(ph_model.parameters(), step_size=h, **gains)
    settings = PortHamiltonianSGD.heavy_ball_equivalent(h, **gains)
    assert settings["lr"] == pytest.approx(gains["potential_gain"] * h**2 / gains["inertia"])
    assert settings["momentum"] == pytest.approx(1 - h * gains["damping"] / gains["inertia"])
    sgd = torch.optim.SGD(sgd_model.parameters(), **settings)
    ph_losses = train(ph_model, ph)
    sgd_losses = train(sgd_model, sgd)
    assert ph_losses[-1] < 0.9 * ph_losses[0]  # it learns
    assert ph_losses == pytest.approx(sgd_losses, rel=1e-10, abs=1e-12)
    for a, b in zip(ph_model.parameters(), sgd_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # the momenta are SGD's buffers scaled by −h·a
    for p in ph_model.parameters():
        q = dict(zip(ph_model.parameters(), sgd_model.parameters(), strict=True))[p]
        buf = sgd.state[q]["momentum_buffer"]
        expected = -h * gains["potential_gain"] * buf
        assert torch.allclose(ph.state[p]["momentum"], expected, rtol=1e-9, atol=1e-12)


def test_step_is_the_euler_step_of_the_vector_field():
    """One step from p = 0 moves θ by h²/m · (−a∇L − cθ) exactly."""
    model = build_model(2, 2, architecture="linear", seed=0, dtype=torch.float64)
    theta0 = [p.detach().clone() for p in model.parameters()]
    opt = PortHamiltonianSGD(
        model.parameters(), 0.5, damping=0.7, inertia=2.0, potential_gain=3.0, weight_decay=0.1
    )
    x, y = problem()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g.clone()
    opt.step()
    for p, t0, g in zip(model.parameters(), theta0, grads, strict=True):
        expected = t0 + 0.25 / 2.0 * (-3.0 * g - 0.1 * t0)
        assert torch.allclose(p.detach(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(step_size=0.0), "Invalid step_size: 0.0"),
        (dict(step_size=0.1, damping=-1.0), "Invalid damping: -1.0"),
        (dict(step_size=0.1, inertia=0.0), "Invalid inertia: 0.0"),
        (dict(step_size=0.1, potential_gain=-1.0), "Invalid potential_gain: -1.0"),
        (dict(step_size=0.1, weight_decay=-1e-3), "Invalid weight_decay: -0.001"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, message):
    model = build_model(2, 2, architecture="linear")
    with pytest.raises(ValueError, match=message):
        PortHamiltonianSGD(model.parameters(), **kwargs)


@pytest.mark.parametrize("damping", [0.3, 40.0])
def test_conformal_scheme_equals_sgd_with_momentum_e_to_the_minus_hb_over_m(damping):
    h, gains = 0.5, dict(damping=damping, inertia=2.0, potential_gain=3.0, weight_decay=0.05)
    ph_model = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    sgd_model = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    ph = PortHamiltonianSGD(ph_model.parameters(), step_size=h, scheme="conformal", **gains)
    settings = PortHamiltonianSGD.heavy_ball_equivalent(h, scheme="conformal", **gains)
    decay = math.exp(-h * damping / 2.0)
    assert settings["momentum"] == pytest.approx(decay) and 0 < settings["momentum"] <= 1
    sgd = torch.optim.SGD(sgd_model.parameters(), **settings)
    ph_losses = train(ph_model, ph)
    assert ph_losses == pytest.approx(train(sgd_model, sgd), rel=1e-9, abs=1e-12)
    assert ph_losses[-1] < ph_losses[0]


def test_heavy_ball_mapping_refuses_negative_momentum():
    with pytest.raises(ValueError, match=r"h·B/m = 2 > 1.*scheme='conformal'"):
        PortHamiltonianSGD.heavy_ball_equivalent(0.5, damping=8.0, inertia=2.0)


def test_param_groups_step_as_separate_optimizers():
    """Each group keeps its own gains and scheme: one optimizer over two groups takes the
    steps of two optimizers, one a group."""
    first = dict(step_size=0.5, damping=0.3, inertia=2.0, potential_gain=3.0, weight_decay=0.05)
    second = dict(step_size=0.2, damping=8.0, inertia=0.5, weight_decay=0.0, scheme="conformal")
    grouped = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    apart = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    a, b = list(grouped.parameters()), list(apart.parameters())
    one = PortHamiltonianSGD([dict(params=a[:2], **first), dict(params=a[2:], **second)])
    two = [PortHamiltonianSGD(b[:2], **first), PortHamiltonianSGD(b[2:], **second)]

    class Both:  # the two optimizers as one, for ``train``
        def zero_grad(self):
            for optimizer in two:
                optimizer.zero_grad()

        def step(self):
            for optimizer in two:
                optimizer.step()

    assert train(grouped, one) == train(apart, Both())
    for i, (p, q) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(p, q)
        apart_state = two[0 if i < 2 else 1].state[q]
        assert torch.equal(one.state[p]["momentum"], apart_state["momentum"])
    assert [g["scheme"] for g in one.param_groups] == ["euler", "conformal"]


def test_state_dict_round_trips_and_a_reloaded_optimizer_continues_identically():
    gains = dict(damping=0.3, inertia=2.0, potential_gain=3.0, weight_decay=0.05)
    model = build_model(2, 2, hidden="6", activation="tanh", seed=0, dtype=torch.float64)
    optimizer = PortHamiltonianSGD(model.parameters(), 0.5, **gains)
    train(model, optimizer, steps=20)
    saved = copy.deepcopy(optimizer.state_dict())
    assert all("momentum" in state for state in saved["state"].values())

    reloaded_model = copy.deepcopy(model)
    # other settings on purpose: load_state_dict brings back the saved ones
    reloaded = PortHamiltonianSGD(reloaded_model.parameters(), 0.1, scheme="conformal")
    reloaded.load_state_dict(saved)
    assert reloaded.param_groups[0]["step_size"] == 0.5
    assert reloaded.param_groups[0]["scheme"] == "euler"
    again = reloaded.state_dict()
    assert again["param_groups"] == saved["param_groups"]
    for key, state in saved["state"].items():
        assert torch.equal(again["state"][key]["momentum"], state["momentum"])

    assert train(reloaded_model, reloaded) == train(model, optimizer)
    for p, q in zip(model.parameters(), reloaded_model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "group, message",
    [
        ({"damping": -1.0}, "damping"),
        ({"inertia": 0.0}, "inertia"),
        ({"step_size": 0.0}, "step_size"),
        ({"scheme": "leapfrog"}, "scheme"),
    ],
)
def test_a_param_groups_own_gains_are_checked(group, message):
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=message):
        PortHamiltonianSGD([{"params": [a]}, {"params": [b], **group}], step_size=0.1)
    opt = PortHamiltonianSGD([a], step_size=0.1)
    with pytest.raises(ValueError, match=message):
        opt.add_param_group({"params": [b], **group})
