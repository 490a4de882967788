"""phviz.spectrum against dense Hessians: exact on quadratics and small networks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

import phviz
from phviz.dynamics import potential_energy
from phviz.spectrum import Spectrum, layer_spectra, spectrum


@pytest.fixture(autouse=True)
def one_thread():
    """Hessian-vector products of small networks run best on one thread: several threads
    on a busy machine wait on each other far longer than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mse(outputs, targets):
    return ((outputs - targets) ** 2).mean()


def dense_hessian(model, loss_fn, inputs, targets, gain=1.0, decay=0.0) -> np.ndarray:
    """∇² of a·L + (c/2)‖θ‖² at the model's parameters θ (``named_parameters()`` order)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    theta = torch.cat([p.detach().reshape(-1) for _, p in named])

    def loss(flat):
        pieces = flat.split([p.numel() for _, p in named])
        params = {n: t.view_as(p) for (n, p), t in zip(named, pieces, strict=True)}
        loss = loss_fn(functional_call(model, params, (inputs,)), targets)
        return potential_energy(loss, flat, gain, decay)

    matrix = hessian(loss)(theta).detach().to(torch.float64).numpy()
    return 0.5 * (matrix + matrix.T)


def eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors by torch: one thread, where NumPy's BLAS may take
    several that wait on each other on a busy machine."""
    values, vectors = torch.linalg.eigh(torch.from_numpy(matrix))
    return values.numpy(), vectors.numpy()


def eigvalsh(matrix: np.ndarray) -> np.ndarray:
    return torch.linalg.eigvalsh(torch.from_numpy(matrix)).numpy()


def eigenspaces(matrix: np.ndarray, tol: float = 1e-9):
    """Distinct eigenvalues of a symmetric matrix, each with an orthonormal basis."""
    values, vectors = eigh(matrix)
    scale = max(1.0, np.abs(values).max())
    groups = np.split(np.arange(len(values)), np.nonzero(np.diff(values) > tol * scale)[0] + 1)
    return [(values[g].mean(), vectors[:, g]) for g in groups]


def check_gauss_rules(result: Spectrum, matrix: np.ndarray, probe_rows: torch.Tensor):
    """With the Krylov space exhausted, each probe's Ritz values are the distinct
    eigenvalues it touches, and its weights the squared projections onto them."""
    spaces = eigenspaces(matrix)
    rows = probe_rows.to(torch.float64).numpy()
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    distinct = np.array([value for value, _ in spaces])
    # every Ritz value is an eigenvalue, and every eigenvalue is a Ritz value
    nearest = np.abs(result.eigenvalues[:, None] - distinct[None, :]).min(axis=1)
    assert nearest.max() < 1e-8
    for value, basis in spaces:
        mass = ((rows @ basis) ** 2).sum(axis=1).mean()  # averaged over the probes
        hits = np.abs(result.eigenvalues - value) < 1e-8
        assert hits.any()
        assert result.weights[hits].sum() == pytest.approx(mass, abs=1e-10)


@pytest.fixture
def linear_quadratic():
    """A linear model 4 → 2 with bias and squared error: L is a quadratic in θ (10
    parameters) whose Hessian has every eigenvalue twice, once per output."""
    torch.manual_seed(1)
    model = torch.nn.Linear(4, 2).double()
    inputs = torch.randn(30, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0])
    targets = torch.randn(30, 2, dtype=torch.float64)
    return model, mse, inputs, targets


@pytest.fixture
def tiny_mlp():
    """A 3-4-2 tanh MLP (26 parameters) at a random θ, away from any minimum."""
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    inputs = torch.randn(40, 3, dtype=torch.float64)
    targets = torch.randn(40, 2, dtype=torch.float64)
    return model, mse, inputs, targets


def test_quadratic_ritz_values_and_weights_are_exact(linear_quadratic):
    matrix = dense_hessian(*linear_quadratic)
    probe_rows = torch.randn(3, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    result = spectrum(*linear_quadratic, probes=probe_rows, iterations=12)
    check_gauss_rules(result, matrix, probe_rows)
    # each eigenvalue is double, so a probe's Krylov space stops after 5 steps
    assert len(result.eigenvalues) == 3 * 5
    assert result.extremes == pytest.approx(eigvalsh(matrix)[[0, -1]], rel=1e-10)


def test_tiny_mlp_ritz_values_and_weights_match_its_dense_hessian(tiny_mlp):
    matrix = dense_hessian(*tiny_mlp)
    values = eigvalsh(matrix)
    assert values[0] < 0 < values[-1]  # a saddle as well as stiff directions
    probe_rows = torch.randn(2, 26, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    result = spectrum(*tiny_mlp, probes=probe_rows, iterations=26)
    check_gauss_rules(result, matrix, probe_rows)
    assert len(result.eigenvalues) == 2 * 26
    assert result.extremes == pytest.approx((values[0], values[-1]), rel=1e-10)


def test_rademacher_weights_on_a_diagonal_hessian_are_one_over_the_dimension():
    # orthogonal input columns of different lengths: ∇²L = 2·diag(‖x_j‖²)/N, distinct
    inputs = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64))
    model = torch.nn.Linear(5, 1, bias=False).double()
    result = spectrum(model, mse, inputs, torch.zeros(5, 1, dtype=torch.float64), probes=4)
    np.testing.assert_allclose(result.eigenvalues, np.repeat([2, 8, 18, 32, 50], 4) / 5.0)
    np.testing.assert_allclose(result.weights, np.full(20, 1 / 20), rtol=1e-12)
    assert result.extremes == pytest.approx((0.4, 10.0), rel=1e-12)


def test_gains_scale_and_shift_every_eigenvalue(tiny_mlp):
    # against the dense Hessian of the potential itself, with the Krylov space exhausted
    exact = spectrum(*tiny_mlp, iterations=26, potential_gain=2.5, weight_decay=0.3)
    values = eigvalsh(dense_hessian(*tiny_mlp, gain=2.5, decay=0.3))
    assert exact.extremes == pytest.approx((values[0], values[-1]), rel=1e-10)
    plain = spectrum(*tiny_mlp, iterations=10)
    gained = spectrum(*tiny_mlp, iterations=10, potential_gain=2.5, weight_decay=0.3)
    np.testing.assert_allclose(gained.eigenvalues, 2.5 * plain.eigenvalues + 0.3, rtol=1e-13)
    np.testing.assert_array_equal(gained.weights, plain.weights)
    assert gained.extremes == pytest.approx(
        (2.5 * plain.extremes[0] + 0.3, 2.5 * plain.extremes[1] + 0.3), rel=1e-13
    )


def test_weights_sum_to_one_and_eigenvalues_ascend(tiny_mlp):
    result = spectrum(*tiny_mlp, probes=5, iterations=7)
    assert result.eigenvalues.dtype == np.float64 and result.eigenvalues.ndim == 1
    assert result.weights.shape == result.eigenvalues.shape == (35,)
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(result.weights >= 0)
    assert np.all(np.diff(result.eigenvalues) >= 0)
    assert result.extremes[0] <= result.eigenvalues[0] <= result.eigenvalues[-1]
    assert result.eigenvalues[-1] <= result.extremes[1]


def test_damping_ratio_regimes_and_the_critical_line():
    result = Spectrum(
        eigenvalues=np.array([-1.0, 0.0, 0.25, 1.0, 1.1, 4.0]),
        weights=np.full(6, 1 / 6),
        extremes=(-1.0, 4.0),
    )
    # B = 1, m = 1: ζ = 1/(2√μ); the critical line is μ = B²/(4m) = 1/4
    ratio = result.damping_ratio(1.0, 1.0)
    assert np.isnan(ratio[:2]).all()
    np.testing.assert_allclose(ratio[2:], [1.0, 0.5, 1 / (2 * math.sqrt(1.1)), 0.25])
    assert result.critical_curvature(1.0, 1.0) == 0.25
    assert result.critical_curvature(3.0, 2.0) == pytest.approx(9 / 8)
    np.testing.assert_allclose(result.damping_ratio(3.0, 2.0)[3], 3 / (2 * math.sqrt(2)))
    assert list(result.regimes(2.0, 1.0)) == [
        "saddle",
        "saddle",
        "creeping",  # ζ = 2
        "near critical",  # ζ = 1
        "near critical",  # ζ ≈ 0.953
        "oscillating",  # ζ = 0.5
    ]
    assert list(result.regimes(0.0, 1.0))[2:] == ["oscillating"] * 4  # undamped: all ring


def test_damping_ratio_is_nan_exactly_on_the_saddles_of_a_network(tiny_mlp):
    result = spectrum(*tiny_mlp, iterations=26)
    ratio = result.damping_ratio(0.5, 2.0)
    saddle = result.eigenvalues <= 0
    assert saddle.any() and (~saddle).any()
    assert np.isnan(ratio[saddle]).all()
    np.testing.assert_allclose(
        ratio[~saddle], 0.5 / (2 * np.sqrt(2.0 * result.eigenvalues[~saddle]))
    )


def test_layer_spectra_are_the_dense_hessians_diagonal_blocks(tiny_mlp):
    matrix = dense_hessian(*tiny_mlp)
    spectra = layer_spectra(*tiny_mlp, probes=2, iterations=30, vectors=1)
    assert list(spectra) == ["0", "2"]
    blocks = {"0": slice(0, 16), "2": slice(16, 26)}  # 0.weight, 0.bias | 2.weight, 2.bias
    for prefix, block in blocks.items():
        values = eigvalsh(matrix[block, block])
        result = spectra[prefix]
        nearest = np.abs(result.eigenvalues[:, None] - values[None, :]).min(axis=1)
        assert nearest.max() < 1e-8
        # each probe finds every distinct eigenvalue (the output layer's are double)
        assert len(result.eigenvalues) == 2 * len(eigenspaces(matrix[block, block]))
        assert result.extremes == pytest.approx((values[0], values[-1]), rel=1e-10)
        outside = np.ones(26, dtype=bool)
        outside[block] = False
        assert torch.all(result.vectors[:, outside] == 0)
        for v, mu in zip(result.vectors.numpy()[:, block], result.vector_values, strict=True):
            assert np.linalg.norm(matrix[block, block] @ v - mu * v) < 1e-8


def test_ritz_vectors_of_a_quadratic_are_eigenvectors(linear_quadratic):
    matrix = dense_hessian(*linear_quadratic)
    result = spectrum(*linear_quadratic, probes=1, iterations=3, vectors=2)
    assert result.vectors.shape == (4, 10) and result.vectors.dtype == torch.float64
    values = eigvalsh(matrix)
    distinct = [v for v, _ in eigenspaces(matrix)]
    np.testing.assert_allclose(result.vector_values, distinct[:2] + distinct[-2:], rtol=1e-10)
    for v, mu in zip(result.vectors.numpy(), result.vector_values, strict=True):
        assert np.linalg.norm(v) == pytest.approx(1.0)
        assert np.linalg.norm(matrix @ v - mu * v) < 1e-8 * values[-1]
    assert spectrum(*linear_quadratic).vectors is None


def test_same_seed_same_spectrum_and_the_model_is_untouched(tiny_mlp):
    model = tiny_mlp[0]
    before = copy.deepcopy(model.state_dict())
    first = spectrum(*tiny_mlp, iterations=8, seed=3)
    again = spectrum(*tiny_mlp, iterations=8, seed=3)
    other = spectrum(*tiny_mlp, iterations=8, seed=4)
    np.testing.assert_array_equal(first.eigenvalues, again.eigenvalues)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.array_equal(first.eigenvalues, other.eigenvalues)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_frozen_parameters_are_not_part_of_theta(linear_quadratic):
    model, loss_fn, inputs, targets = linear_quadratic
    model.bias.requires_grad_(False)
    model.bias.data.zero_()
    without_bias = torch.nn.Linear(4, 2, bias=False).double()
    without_bias.weight.data.copy_(model.weight.data)
    frozen = spectrum(*linear_quadratic, iterations=8, vectors=1)
    plain = spectrum(without_bias, loss_fn, inputs, targets, iterations=8, vectors=1)
    np.testing.assert_allclose(frozen.eigenvalues, plain.eigenvalues, rtol=1e-12)
    assert frozen.vectors.shape == (2, 8)
    assert list(layer_spectra(*linear_quadratic, iterations=8)) == ["weight"]


def test_a_small_digits_network_in_float32_matches_its_dense_extremes():
    torch.manual_seed(0)
    config = phviz.make_config(
        "default", dataset="digits", hidden="12", n_samples=300, device="cpu"
    )
    trainer = phviz.Trainer(config)
    model, data = trainer.model, trainer.dataset
    assert next(model.parameters()).dtype == torch.float32
    result = spectrum(model, data.loss_fn, data.x_train, data.y_train)
    reference = copy.deepcopy(model).double()
    values = eigvalsh(dense_hessian(reference, data.loss_fn, data.x_train.double(), data.y_train))
    assert result.extremes[0] == pytest.approx(values[0], rel=0.01)
    assert result.extremes[1] == pytest.approx(values[-1], rel=0.01)


@pytest.mark.parametrize(
    "setting, value, pattern",
    [
        ("probes", 0, "Invalid probes: 0"),
        ("iterations", 0, "Invalid iterations: 0"),
        ("potential_gain", math.nan, "Invalid potential_gain: nan"),
        ("weight_decay", math.inf, "Invalid weight_decay: inf"),
        ("vectors", -1, "Invalid vectors: -1"),
        ("seed", -2, "Invalid seed: -2"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(tiny_mlp, setting, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        spectrum(*tiny_mlp, **{setting: value})


def test_empty_data_and_bad_probes_raise_value_error(tiny_mlp):
    model, loss_fn, inputs, targets = tiny_mlp
    with pytest.raises(ValueError, match="Invalid inputs: shape \\(0, 3\\)"):
        spectrum(model, loss_fn, inputs[:0], targets[:0])
    with pytest.raises(ValueError, match="Invalid probes: shape \\(2, 5\\)"):
        spectrum(*tiny_mlp, probes=torch.ones(2, 5))
    with pytest.raises(TypeError, match="Invalid iterations: 2.5"):
        spectrum(*tiny_mlp, iterations=2.5)
    with pytest.raises(ValueError, match="Invalid band: -0.1"):
        Spectrum(np.ones(1), np.ones(1), (1.0, 1.0)).regimes(1.0, 1.0, band=-0.1)
    with pytest.raises(ValueError, match="Invalid damping: -1.0"):
        Spectrum(np.ones(1), np.ones(1), (1.0, 1.0)).damping_ratio(-1.0, 1.0)


def test_too_few_steps_for_the_extremes_warn(tiny_mlp):
    with pytest.warns(RuntimeWarning, match="did not converge in 4 Lanczos steps"):
        spectrum(*tiny_mlp, iterations=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_models_device_as_on_the_cpu(tiny_mlp):
    model, loss_fn, inputs, targets = tiny_mlp
    on_cpu = spectrum(*tiny_mlp, iterations=26, vectors=1)
    on_gpu = spectrum(
        copy.deepcopy(model).cuda(),
        loss_fn,
        inputs.cuda(),
        targets.cuda(),
        iterations=26,
        vectors=1,
    )
    np.testing.assert_allclose(on_gpu.eigenvalues, on_cpu.eigenvalues, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(on_gpu.weights, on_cpu.weights, rtol=1e-6, atol=1e-12)
    assert on_gpu.vectors.device.type == "cuda"
    blocks = layer_spectra(copy.deepcopy(model).cuda(), loss_fn, inputs.cuda(), targets.cuda())
    assert blocks["0"].extremes == pytest.approx(layer_spectra(*tiny_mlp)["0"].extremes)


def test_the_autopilots_modes_and_their_critical_damping():
    """Hessian diag(−1, 1, 4, 9, 16) of a quadratic: the stiffest mode is 16, the
    flattest that can ring 1 (−1 is a saddle), the median of the ringing modes 4 or 9."""
    values = torch.tensor([-1.0, 1.0, 4.0, 9.0, 16.0], dtype=torch.float64)
    model = torch.nn.Linear(5, 1, bias=False).double()
    inputs = torch.diag(values.abs().sqrt() * math.sqrt(5 / 2))
    signs = values.sign()

    def loss(outputs, targets):  # ½·Σ sign·(x·w)² over the rows: Hessian diag(values)
        return (signs[:, None] * outputs**2).sum() * (2 / 5) / 2

    found = spectrum(model, loss, inputs, torch.zeros(5, 1, dtype=torch.float64), iterations=5)
    assert found.mode("stiffest") == pytest.approx(16.0)
    assert found.mode("flattest") == pytest.approx(1.0)
    assert found.mode("median") in (pytest.approx(4.0), pytest.approx(9.0))
    assert found.critical_damping("stiffest", inertia=0.25) == pytest.approx(2 * math.sqrt(4.0))
    ratio = found.damping_ratio(found.critical_damping("flattest", 2.0), 2.0)
    np.testing.assert_allclose(ratio[np.isclose(found.eigenvalues, 1.0)], 1.0)
    with pytest.raises(ValueError, match="Invalid mode: 'softest'"):
        found.mode("softest")
