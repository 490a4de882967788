"""Datasets, generated or loaded locally and seeded, with a train/test split.

Each dataset says whether it is classification or regression and which loss it is
trained with; ``loss_function(name)`` returns that loss as ``loss(outputs, targets)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .losses import loss_function

DATASETS = (
    "paper-blobs",
    "paper-notebook",
    "moons",
    "circles",
    "xor",
    "spiral",
    "duffing",
    "digits",
)
# Most noise a data set takes, in its own units (the training config's bound as well).
MAX_NOISE = 5.0

# The paper's two Gaussian classes (the paper's linear boundary).
BLOB_MEANS = ((0.6, 0.7), (0.1, 0.2))
BLOB_COVARIANCE = ((0.025, 0.0), (0.0, 0.01))

# The Duffing oscillator u'' = -alpha u - k u' - beta u^3 (the paper's second experiment).
DUFFING = {"alpha": 1.0, "k": 0.5, "beta": 1.0, "x0": (1.5, 1.0), "t_end": 8.0, "dt": 0.02}


@dataclass
class Dataset:
    """Train and test tensors plus what the task is."""

    name: str
    task: str  # "classification" or "regression"
    loss: str  # one of LOSSES
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 0

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def output_dim(self) -> int:
        return self.n_classes if self.task == "classification" else self.y_train.shape[1]

    @property
    def loss_fn(self):
        return loss_function(self.loss)

    def to(self, device=None, dtype=None) -> Dataset:
        """Floating tensors in ``dtype`` on ``device``; integer labels stay integers."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return Dataset(
            self.name,
            self.task,
            self.loss,
            move(self.x_train),
            move(self.y_train),
            move(self.x_test),
            move(self.y_test),
            self.n_classes,
        )


def make_dataset(
    name: str = "moons",
    *,
    n_samples: int | None = None,
    noise: float | None = None,
    train_fraction: float | None = None,
    seed: int = 0,
) -> Dataset:
    """Build dataset ``name``; ``None`` takes that dataset's own default.

    ``n_samples`` is the total (train + test); ``noise`` is in the data's own units
    (for the Duffing field, a standard deviation added to the derivative targets).
    """
    if name not in DATASETS:
        raise ValueError(f"Invalid dataset: {name!r} (choose one of {', '.join(DATASETS)})")
    spec = _DEFAULTS[name]
    n = spec["n_samples"] if n_samples is None else n_samples
    noise = spec["noise"] if noise is None else noise
    frac = spec["train_fraction"] if train_fraction is None else train_fraction
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"Invalid n_samples: {n!r} (must be a whole number >= 4)")
    if not 0.0 <= noise <= MAX_NOISE:
        raise ValueError(f"Invalid noise: {noise!r} (must be in [0, {MAX_NOISE:g}])")
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"Invalid train_fraction: {frac!r} (must be in (0, 1])")
    if "build" in spec:
        return spec["build"](name, spec)
    rng = np.random.default_rng(seed)
    x, y = spec["make"](n, noise, rng)
    return _split(name, spec, x, y, frac, rng)


def _split(name, spec, x, y, frac, rng) -> Dataset:
    order = rng.permutation(len(x)) if frac < 1.0 else np.arange(len(x))
    n_train = max(1, int(round(frac * len(x))))
    return _dataset(
        name, spec, x[order[:n_train]], y[order[:n_train]], x[order[n_train:]], y[order[n_train:]]
    )


def _dataset(name, spec, x_train, y_train, x_test, y_test, real=torch.float32) -> Dataset:
    classification = spec["task"] == "classification"
    ydt = torch.long if classification else torch.float32

    def t(a, dt=real):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dt)

    return Dataset(
        name=name,
        task=spec["task"],
        loss=spec["loss"],
        x_train=t(x_train),
        y_train=t(y_train, ydt),
        x_test=t(x_test),
        y_test=t(y_test, ydt),
        n_classes=int(max(y_train.max(), y_test.max(initial=0))) + 1 if classification else 0,
    )


# ------------------------------------------------------------------ generators
def _paper_blobs(n, noise, rng):
    """Two Gaussian classes of n/2 points each; ``noise`` scales the covariance."""
    half = n // 2
    cov = np.array(BLOB_COVARIANCE) * (noise if noise > 0 else 1.0)
    x = np.concatenate([rng.multivariate_normal(m, cov, size=half) for m in BLOB_MEANS])
    y = np.repeat([0, 1], half)
    return x, y


def _paper_notebook(name, spec) -> Dataset:
    """The authors' notebook data, drawn exactly as it draws them (float64 samples).

    Class one from NumPy's legacy generator seeded 1, class two seeded 2, 1000 points
    each, then scikit-learn's ``train_test_split(test_size=0.25, random_state=42)``: the
    same points in the same order, so a run can be checked against their code.
    """
    from sklearn.model_selection import train_test_split

    # RandomState(seed) is the stream np.random.seed(seed) gives, without the global state
    classes = [
        np.random.RandomState(seed).multivariate_normal(mean, BLOB_COVARIANCE, 1000)
        for seed, mean in zip((1, 2), BLOB_MEANS, strict=True)
    ]
    x = np.concatenate(classes)
    y = np.repeat([0, 1], 1000)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    return _dataset(name, spec, x_train, y_train, x_test, y_test, torch.float64)


def _moons(n, noise, rng):
    from sklearn.datasets import make_moons

    return make_moons(n, noise=noise, random_state=_sk_seed(rng))


def _circles(n, noise, rng):
    from sklearn.datasets import make_circles

    return make_circles(n, noise=noise, factor=0.5, random_state=_sk_seed(rng))


def _xor(n, noise, rng):
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    return x + noise * rng.standard_normal(x.shape), y


def _spiral(n, noise, rng):
    """Two interleaved arms of Archimedes' spiral."""
    half = n // 2
    r = np.sqrt(rng.uniform(0.0, 1.0, half)) * 3.0 * np.pi
    arms = []
    for k in (0, 1):
        a = r + k * np.pi
        arms.append(np.stack([r * np.cos(a), r * np.sin(a)], axis=1) / (3.0 * np.pi))
    x = np.concatenate(arms) + noise * rng.standard_normal((2 * half, 2))
    return x, np.repeat([0, 1], half)


def _digits(n, noise, rng):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = bunch.data / 16.0, bunch.target
    keep = rng.permutation(len(x))[: min(n, len(x))]
    return x[keep] + noise * rng.standard_normal(x[keep].shape), y[keep]


def duffing_field(state: np.ndarray | torch.Tensor):
    """The Duffing vector field (u, v) ↦ (v, −αu − kv − βu³), for arrays of states."""
    alpha, k, beta = DUFFING["alpha"], DUFFING["k"], DUFFING["beta"]
    u, v = state[..., 0], state[..., 1]
    lib = torch if isinstance(state, torch.Tensor) else np
    return lib.stack([v, -alpha * u - k * v - beta * u**3], -1)


def duffing_trajectory(x0=None, t_end=None, dt=None) -> tuple[np.ndarray, np.ndarray]:
    """Times ``arange(0, t_end, dt)`` and the true trajectory there (float64, tight rtol)."""
    from torchdiffeq import odeint

    x0 = DUFFING["x0"] if x0 is None else x0
    t_end = DUFFING["t_end"] if t_end is None else t_end
    dt = DUFFING["dt"] if dt is None else dt
    ts = torch.arange(0.0, t_end - 1e-9, dt, dtype=torch.float64)
    xs = odeint(
        lambda t, s: duffing_field(s),
        torch.tensor(x0, dtype=torch.float64),
        ts,
        rtol=1e-10,
        atol=1e-12,
    )
    return ts.numpy(), xs.numpy()


def _duffing(n, noise, rng):
    """States along the trajectory → finite-difference derivatives (the paper's pairs).

    With t = arange(0, 8, 0.02) that is 400 states and 399 pairs; ``n`` is ignored.
    """
    ts, xs = duffing_trajectory()
    dxdt = np.diff(xs, axis=0) / np.diff(ts)[:, None]
    return xs[:-1], dxdt + noise * rng.standard_normal(dxdt.shape)


def _sk_seed(rng) -> int:
    return int(rng.integers(0, 2**31 - 1))


_DEFAULTS = {
    "paper-blobs": dict(
        make=_paper_blobs,
        n_samples=2000,
        noise=1.0,
        train_fraction=0.75,
        task="classification",
        loss="mse_onehot",
    ),
    # size, noise and split are the notebook's and cannot be changed
    "paper-notebook": dict(
        build=_paper_notebook,
        n_samples=2000,
        noise=1.0,
        train_fraction=0.75,
        task="classification",
        loss="mse_onehot",
    ),
    "moons": dict(
        make=_moons,
        n_samples=400,
        noise=0.15,
        train_fraction=0.75,
        task="classification",
        loss="cross_entropy",
    ),
    "circles": dict(
        make=_circles,
        n_samples=400,
        noise=0.08,
        train_fraction=0.75,
        task="classification",
        loss="cross_entropy",
    ),
    "xor": dict(
        make=_xor,
        n_samples=400,
        noise=0.05,
        train_fraction=0.75,
        task="classification",
        loss="cross_entropy",
    ),
    "spiral": dict(
        make=_spiral,
        n_samples=600,
        noise=0.03,
        train_fraction=0.75,
        task="classification",
        loss="cross_entropy",
    ),
    "duffing": dict(
        make=_duffing,
        n_samples=399,
        noise=0.0,
        train_fraction=1.0,
        task="regression",
        loss="mse",
    ),
    "digits": dict(
        make=_digits,
        n_samples=1797,
        noise=0.0,
        train_fraction=0.8,
        task="classification",
        loss="cross_entropy",
    ),
}


def dataset_defaults(name: str) -> dict:
    """The default size, noise and split of dataset ``name``."""
    spec = _DEFAULTS[name]
    return {k: spec[k] for k in ("n_samples", "noise", "train_fraction", "task", "loss")}
