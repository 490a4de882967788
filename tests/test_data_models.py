"""Datasets and architectures: sizes, seeds, tasks and clear errors."""

import numpy as np
import pytest
import torch

from phviz.config import TrainingConfig
from phviz.data import DATASETS, MAX_NOISE, dataset_defaults, duffing_field, make_dataset
from phviz.models import build_model, parse_hidden


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_is_seeded_split_and_typed(name):
    a = make_dataset(name, seed=4)
    b = make_dataset(name, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    defaults = dataset_defaults(name)
    n_total = len(a.x_train) + len(a.x_test)
    expected_train = round(defaults["train_fraction"] * n_total)
    assert len(a.x_train) == expected_train
    assert a.task == defaults["task"]
    if a.task == "classification":
        assert a.y_train.dtype == torch.long and a.n_classes == int(a.y_train.max()) + 1
        assert a.output_dim == a.n_classes
    else:
        assert a.y_train.dtype == torch.float32 and a.output_dim == a.y_train.shape[1]
    out = torch.zeros(len(a.x_train), a.output_dim)
    assert torch.isfinite(a.loss_fn(out, a.y_train))
    if name not in ("duffing", "paper-notebook"):  # a different seed gives different data
        assert not torch.equal(make_dataset(name, seed=5).x_train, a.x_train)


def test_paper_notebook_data_are_drawn_as_the_notebook_draws_them():
    np = pytest.importorskip("numpy")
    from sklearn.model_selection import train_test_split

    np.random.seed(1)
    one = np.random.multivariate_normal((0.6, 0.7), np.diag([0.025, 0.01]), 1000)
    np.random.seed(2)
    two = np.random.multivariate_normal((0.1, 0.2), np.diag([0.025, 0.01]), 1000)
    x = np.concatenate([one, two])
    y = np.repeat([0, 1], 1000)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.25, random_state=42)
    np.random.seed(7)
    expected_next = np.random.rand()
    np.random.seed(7)
    d = make_dataset("paper-notebook")
    assert np.random.rand() == expected_next  # the global generator is left as it was
    assert d.x_train.dtype == torch.float64
    assert np.array_equal(d.x_train.numpy(), x_train)
    assert np.array_equal(d.x_test.numpy(), x_test)
    assert np.array_equal(d.y_train.numpy(), y_train)


def test_paper_blobs_have_the_papers_statistics():
    ds = make_dataset("paper-blobs", seed=0)
    x = torch.cat([ds.x_train, ds.x_test]).double()
    y = torch.cat([ds.y_train, ds.y_test])
    assert len(x) == 2000 and len(ds.x_test) == 500
    for label, mean in ((0, (0.6, 0.7)), (1, (0.1, 0.2))):
        xs = x[y == label]
        assert len(xs) == 1000
        assert torch.allclose(xs.mean(0), torch.tensor(mean, dtype=torch.float64), atol=0.02)
        var = xs.var(0)
        assert var[0] == pytest.approx(0.025, rel=0.15) and var[1] == pytest.approx(0.01, rel=0.15)
    assert ds.loss == "mse_onehot"


def test_duffing_pairs_are_finite_differences_of_the_true_trajectory():
    ds = make_dataset("duffing")
    assert ds.x_train.shape == (399, 2) and len(ds.x_test) == 0
    assert torch.allclose(ds.x_train[0], torch.tensor([1.5, 1.0]))
    # a forward difference over 0.02 s is the field at the step's midpoint to O(dt²)
    x = ds.x_train.double().numpy()
    midpoints = 0.5 * (x[1:] + x[:-1])
    assert np.abs(ds.y_train.numpy()[:-1] - duffing_field(midpoints)).max() < 5e-3
    assert np.abs(ds.y_train.numpy() - duffing_field(x)).max() > 5e-2  # not the field itself
    # and consecutive states differ by 0.02 × the difference quotient
    step = (ds.x_train[1:] - ds.x_train[:-1]) / 0.02
    assert torch.allclose(step, ds.y_train[:-1], atol=1e-4)


def test_digits_is_the_bundled_8x8_set():
    ds = make_dataset("digits")
    assert ds.input_dim == 64 and ds.n_classes == 10
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert float(ds.x_train.max()) <= 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="mnist"), "Invalid dataset: 'mnist'"),
        (dict(name="moons", n_samples=2), "Invalid n_samples: 2"),
        (dict(name="moons", noise=-0.1), "Invalid noise: -0.1"),
        (dict(name="moons", train_fraction=0.0), "Invalid train_fraction: 0.0"),
    ],
)
def test_bad_dataset_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_dataset(**kwargs)


def test_the_data_take_every_noise_the_config_takes():
    low, high = TrainingConfig.param.noise.bounds
    for noise in (low, high):
        TrainingConfig(noise=noise)
        make_dataset("moons", noise=noise)
    with pytest.raises(ValueError, match=f"Invalid noise: {2 * MAX_NOISE}"):
        make_dataset("moons", noise=2 * MAX_NOISE)
    with pytest.raises(ValueError):
        TrainingConfig(noise=2 * MAX_NOISE)


def test_models_from_spec():
    model = build_model(2, 3, hidden="16, 8", activation="tanh", seed=0)
    assert model.sizes == (2, 16, 8, 3)
    assert sum(p.numel() for p in model.parameters()) == 2 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
    linear = build_model(2, 2, architecture="linear")
    assert linear.sizes == (2, 2) and len(linear) == 1
    # seeded and leaves the global generator alone
    state = torch.random.get_rng_state()
    again = build_model(2, 3, hidden="16,8", activation="tanh", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    x = torch.randn(5, 2)
    tensors = [p for p in model.parameters()]
    assert torch.allclose(model.functional_forward(tensors, x), model(x))


@pytest.mark.parametrize("activation", ["softplus", "tanh", "relu", "sigmoid"])
def test_functional_forward_matches_module(activation):
    model = build_model(3, 2, hidden=[5, 4], activation=activation, seed=1)
    x = torch.randn(7, 3)
    assert torch.allclose(model.functional_forward(list(model.parameters()), x), model(x))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "Invalid hidden widths: ''"),
        ("  ", "Invalid hidden widths"),
        ([], r"Invalid hidden widths: \[\]"),
        ("16,0", "Invalid hidden width: 0"),
        ("16,-4", "Invalid hidden width: -4"),
        ("16,x", "Invalid hidden widths: '16,x'"),
    ],
)
def test_bad_widths_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_hidden(spec)
    with pytest.raises(ValueError, match=message):
        build_model(2, 2, hidden=spec)


def test_bad_activation_and_architecture():
    with pytest.raises(ValueError, match="Invalid activation: 'gelu'"):
        build_model(2, 2, activation="gelu")
    with pytest.raises(ValueError, match="Invalid architecture: 'cnn'"):
        build_model(2, 2, architecture="cnn")


def test_seeded_models_built_on_many_threads_at_once_are_the_same():
    from concurrent.futures import ThreadPoolExecutor

    from phviz.models import build_model

    def weights(_):
        model = build_model(2, 2, hidden="64,64", seed=3)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    alone = weights(None)
    with ThreadPoolExecutor(8) as pool:
        for together in pool.map(weights, range(32)):
            assert torch.equal(together, alone)
