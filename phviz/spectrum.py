"""The curvature spectrum of the potential, by stochastic Lanczos quadrature.

Near a minimum each eigen-direction of the Hessian of the potential a·L + (c/2)·‖θ‖²
moves as a damped oscillator m·q̈ + B·q̇ + μ·q = 0: its eigenvalues μ say which modes
ring (damping ratio ζ = B / (2√(μ·m)) < 1), which creep (ζ > 1) and which are saddles
(μ ≤ 0). ``spectrum`` estimates their density from a few random probes and a few
Lanczos steps on Hessian-vector products, never forming the Hessian (stochastic Lanczos
quadrature: Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019). Each probe gives
a Gauss rule: the Ritz values of its tridiagonal matrix are the nodes, the squared first
components of the tridiagonal's eigenvectors the weights. ``layer_spectra`` does the
same for the Hessian's block of each layer.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings

import numpy as np
import torch
from torch.func import functional_call

from .dynamics import ParameterLayout, check_gain_value

PROBES = 3  # random probes pooled into the density
ITERATIONS = 40  # Lanczos steps per probe: the nodes of each probe's Gauss rule
TOLERANCE = 1e-3  # relative error allowed in the extremes (and the extreme Ritz vectors)
MODES = ("stiffest", "flattest", "median")  # the modes ``Spectrum.mode`` names
EXTENSION = 4  # the extremes' probe runs at most EXTENSION × ``iterations`` steps
CHUNK = 10  # steps between two convergence checks of the extremes


@dataclasses.dataclass(frozen=True, eq=False)
class Spectrum:
    """Eigenvalues μ of the Hessian of a·L + (c/2)·‖θ‖², as a quadrature rule.

    ``eigenvalues``: the Ritz values of all probes pooled, ascending (float64);
    ``weights``: their Gauss weights divided by the number of probes, summing to one, so
    that ``sum(weights * f(eigenvalues))`` estimates the mean of f over the spectrum;
    ``extremes``: (smallest, largest) μ, converged; ``vectors``: unit Ritz vectors (rows
    of θ's length, in θ's dtype and device) of the extreme eigenvalues ``vector_values``
    (ascending), when asked for, else None.
    """

    eigenvalues: np.ndarray
    weights: np.ndarray
    extremes: tuple[float, float]
    vectors: torch.Tensor | None = None
    vector_values: np.ndarray | None = None

    def critical_curvature(self, damping, inertia=1.0) -> float:
        """B²/(4m): the curvature μ whose mode is critically damped (the critical line)."""
        damping, inertia = _scalar_gains(damping, inertia)
        return damping * damping / (4.0 * inertia)

    def damping_ratio(self, damping, inertia=1.0) -> np.ndarray:
        """ζ = B / (2√(μ·m)) for each Ritz value μ; NaN where μ ≤ 0 (a saddle, which no
        damping makes ring). μ already includes a and c: it is the potential's curvature."""
        damping, inertia = _scalar_gains(damping, inertia)
        ratio = np.full(self.eigenvalues.shape, np.nan)
        stiff = self.eigenvalues > 0
        ratio[stiff] = damping / (2.0 * np.sqrt(self.eigenvalues[stiff] * inertia))
        return ratio

    def mode(self, which: str) -> float:
        """The curvature μ of the ``which`` mode: "stiffest" (the largest μ), "flattest"
        (the smallest μ > 0: saddles cannot ring) or "median" (of the modes with μ > 0,
        by their weight); NaN when no mode has μ > 0."""
        stiff = self.eigenvalues > 0
        if which not in MODES:
            raise ValueError(f"Invalid mode: {which!r} (choose one of {', '.join(MODES)})")
        if not stiff.any():
            return math.nan
        if which == "stiffest":
            return float(self.extremes[1])
        if which == "flattest":
            positive = self.extremes[0] if self.extremes[0] > 0 else math.inf
            return float(min(positive, self.eigenvalues[stiff].min()))
        values, weights = self.eigenvalues[stiff], self.weights[stiff]
        half = np.searchsorted(np.cumsum(weights), 0.5 * weights.sum())
        return float(values[min(half, len(values) - 1)])

    def critical_damping(self, which: str, inertia=1.0) -> float:
        """B = 2√(μ·m) that makes the ``which`` mode (see ``mode``) critically damped:
        the damping an autopilot sets. μ is already the potential's curvature a·λ + c."""
        _, inertia = _scalar_gains(0.0, inertia)
        return 2.0 * math.sqrt(self.mode(which) * inertia)

    def regimes(self, damping, inertia=1.0, band=0.1) -> np.ndarray:
        """Per Ritz value: 'oscillating' (ζ < 1 − band), 'near critical' (ζ within band of 1),
        'creeping' (ζ > 1 + band) or 'saddle' (μ ≤ 0)."""
        if isinstance(band, bool) or not isinstance(band, (int, float)):
            raise TypeError(f"Invalid band: {band!r} (expected a number)")
        if not math.isfinite(band) or band < 0:
            raise ValueError(f"Invalid band: {band!r} (must be finite and >= 0)")
        ratio = self.damping_ratio(damping, inertia)
        labels = np.full(ratio.shape, "saddle", dtype=object)
        labels[ratio < 1 - band] = "oscillating"
        labels[np.abs(ratio - 1) <= band] = "near critical"
        labels[ratio > 1 + band] = "creeping"
        return labels


def spectrum(
    model: torch.nn.Module,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    potential_gain: float = 1.0,
    weight_decay: float = 0.0,
    probes: int | torch.Tensor = PROBES,
    iterations: int = ITERATIONS,
    seed: int = 0,
    vectors: int = 0,
) -> Spectrum:
    """The spectrum of the Hessian of a·L + (c/2)·‖θ‖² at the model's parameters θ.

    θ are the trainable parameters flattened in ``model.named_parameters()`` order, L is
    ``loss_fn(model(inputs), targets)``, a = ``potential_gain``, c = ``weight_decay``.

    ``probes`` = 3 Rademacher probes, drawn from a generator seeded with ``seed``, each
    run for ``iterations`` = 40 Lanczos steps with full reorthogonalisation: defaults
    sized for phviz's networks of a few thousand parameters, for a view that redraws on
    one CPU thread. More probes lower the weights' variance; more iterations resolve the
    density more finely. ``probes`` may also be the probes themselves, a tensor of shape
    (k, len(θ)): with the momentum p as probe, the weights say which modes it excites.

    The first probe runs on, up to 4 × ``iterations`` steps, until the outermost Ritz
    values have residual bounds within 0.1 % of their size (a RuntimeWarning says when
    they have not). ``vectors`` = k keeps the unit Ritz vectors of the k smallest and the
    k largest eigenvalues of that probe, converged the same way (‖Hv − μv‖ ≤ 0.1 % of
    the size of μ); with 0 none are formed. The model is left as it was.
    """
    settings = _check_settings(potential_gain, weight_decay, iterations, seed, vectors)
    hvp, theta = _hessian_vector_product(model, loss_fn, inputs, targets)
    probe_rows = _probe_rows(probes, theta.numel(), seed)
    return _quadrature(hvp, theta, probe_rows, **settings)


def layer_spectra(
    model: torch.nn.Module,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    potential_gain: float = 1.0,
    weight_decay: float = 0.0,
    probes: int | torch.Tensor = PROBES,
    iterations: int = ITERATIONS,
    seed: int = 0,
    vectors: int = 0,
) -> dict[str, Spectrum]:
    """``spectrum`` of each layer's block of the Hessian, by module prefix.

    The block of a layer is the Hessian restricted to that module's own parameters (the
    prefix "0" holds "0.weight" and "0.bias"): the curvature a per-layer gain acts on
    while the other layers hold still. Settings as for ``spectrum``, each layer costing
    about one ``spectrum``; probe tensors are cut to each layer's entries, and Ritz
    vectors have θ's length, zero off the layer.
    """
    settings = _check_settings(potential_gain, weight_decay, iterations, seed, vectors)
    hvp, theta = _hessian_vector_product(model, loss_fn, inputs, targets)
    probe_rows = _probe_rows(probes, theta.numel(), seed)
    spectra = {}
    for prefix, index in _layer_indices(ParameterLayout(model)).items():
        index = index.to(theta.device)
        block_hvp = _restrict(hvp, index, theta.numel())
        block = _quadrature(block_hvp, theta[index], probe_rows[:, index.cpu()], **settings)
        if block.vectors is not None:
            embedded = block.vectors.new_zeros(len(block.vectors), theta.numel())
            embedded[:, index] = block.vectors
            block = dataclasses.replace(block, vectors=embedded)
        spectra[prefix] = block
    return spectra


def _scalar_gains(damping, inertia) -> tuple[float, float]:
    return check_gain_value("damping", damping), check_gain_value("inertia", inertia)


def _whole_number(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Invalid {name}: {value!r} (expected a whole number)")
    if value < least:
        raise ValueError(f"Invalid {name}: {value!r} (must be >= {least})")
    return int(value)


def _check_settings(potential_gain, weight_decay, iterations, seed, vectors) -> dict:
    _whole_number("seed", seed, 0)
    return dict(
        potential_gain=check_gain_value("potential_gain", potential_gain),
        weight_decay=check_gain_value("weight_decay", weight_decay),
        iterations=_whole_number("iterations", iterations, 1),
        vectors=_whole_number("vectors", vectors, 0),
    )


def _probe_rows(probes, dim: int, seed) -> torch.Tensor:
    """The probes as rows of a float64 CPU tensor: given, or Rademacher from ``seed``."""
    if isinstance(probes, torch.Tensor):
        rows = probes.detach().to("cpu", torch.float64)
        rows = rows.unsqueeze(0) if rows.dim() == 1 else rows
        if rows.dim() != 2 or rows.shape[1] != dim or len(rows) == 0:
            raise ValueError(
                f"Invalid probes: shape {tuple(probes.shape)} (expected (k, {dim}), k >= 1)"
            )
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("Invalid probes: not all entries are finite")
        return rows
    count = _whole_number("probes", probes, 1)
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (count, dim), generator=generator, dtype=torch.float64)
    return 2.0 * signs - 1.0


def _hessian_vector_product(model, loss_fn, inputs, targets):
    """v ↦ ∇²L(θ)·v at the model's θ (flat, detached), and θ.

    Reverse over reverse: the gradient's graph is built once, on a copy of θ that
    ``functional_call`` swaps in, and pulled back per vector, so the module's parameters
    are never touched.
    """
    for name, data in (("inputs", inputs), ("targets", targets)):
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"Invalid {name}: {type(data).__name__} (expected a tensor)")
        if data.dim() == 0 or len(data) == 0 or data.numel() == 0:
            raise ValueError(f"Invalid {name}: shape {tuple(data.shape)} (no data points)")
    layout = ParameterLayout(model)
    parameters = [p for p in model.parameters() if p.requires_grad]
    theta = torch.cat([p.detach().reshape(-1) for p in parameters])
    leaf = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        named = dict(zip(layout.names, layout.unflatten(leaf), strict=True))
        outputs = functional_call(model, named, (inputs,), tie_weights=layout.tie_weights)
        loss = loss_fn(outputs, targets)
        (gradient,) = torch.autograd.grad(loss, leaf, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not gradient.requires_grad:  # L is affine in θ: no curvature at all
            return torch.zeros_like(v)
        # the scalar ∇L·v rather than grad_outputs=v: as fast, and no first-call import
        # of torch's symbolic-shape machinery (sympy), which would cost more than the run
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(
                gradient @ v, leaf, retain_graph=True, allow_unused=True, materialize_grads=True
            )
        return hv

    return hvp, theta


def _layer_indices(layout: ParameterLayout) -> dict[str, torch.Tensor]:
    """Module prefix ("0" for "0.weight" and "0.bias") → its entries in θ."""
    groups: dict[str, list[torch.Tensor]] = {}
    for name, start, stop in zip(layout.names, layout.offsets, layout.offsets[1:], strict=False):
        prefix = name.rpartition(".")[0] or name
        groups.setdefault(prefix, []).append(torch.arange(start, stop))
    return {prefix: torch.cat(parts) for prefix, parts in groups.items()}


def _restrict(hvp, index: torch.Tensor, size: int):
    """v ↦ (∇²L restricted to the entries ``index`` of θ)·v, for vectors of those entries."""

    def block_hvp(v: torch.Tensor) -> torch.Tensor:
        full = v.new_zeros(size)
        full[index] = v
        return hvp(full)[index]

    return block_hvp


class _Lanczos:
    """Lanczos on v ↦ Hv from one probe with full reorthogonalisation, run on demand.

    The basis and the tridiagonal T are float64; H is applied in ``dtype``. ``beta[k]``
    couples q_{k+1} to q_{k+2}; the last one is the residual norm of the run so far.
    """

    def __init__(self, hvp, probe: torch.Tensor, dtype: torch.dtype):
        self.hvp, self.dtype = hvp, dtype
        self.basis = (probe / probe.norm()).unsqueeze(0)  # rows q_1, q_2, ...
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.scale = 0.0  # the largest |α| or β so far, about ‖H‖
        self.invariant = False  # the basis spans an invariant subspace: Ritz values exact
        # Past an invariant subspace what is left of a vector is rounding, a few hundred
        # eps of ‖H‖; a coupling β below eps^(2/3)·‖H‖ ends the run, a margin that keeps
        # the small genuine couplings of a float32 Hessian's bulk.
        self.breakdown = torch.finfo(dtype).eps ** (2 / 3)

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def run(self, steps: int) -> None:
        """Extend the run to ``steps`` steps (fewer if the Krylov space stops growing)."""
        dim = self.basis.shape[1]
        while self.steps < min(steps, dim) and not self.invariant:
            q = self.basis[self.steps]
            w = self.hvp(q.to(self.dtype)).to(torch.float64)
            alpha = float(q @ w)
            basis = self.basis[: self.steps + 1]
            for _ in range(2):  # classical Gram–Schmidt twice keeps the basis orthogonal
                w = w - basis.T @ (basis @ w)
            beta = float(w.norm())
            self.scale = max(self.scale, abs(alpha), beta)
            self.alpha.append(alpha)
            self.invariant = beta <= self.breakdown * self.scale or self.steps == dim
            self.beta.append(0.0 if self.invariant else beta)
            if not self.invariant:
                self._append(w / beta)

    def _append(self, q: torch.Tensor) -> None:
        if len(self.basis) == self.steps:  # full: room for as many rows again
            self.basis = torch.cat([self.basis, torch.empty_like(self.basis)])
        self.basis[self.steps] = q

    def ritz(self, steps: int | None = None):
        """Ritz values of the first ``steps`` steps, T's eigenvectors (columns) and their
        residual bounds |β_m·s_m|: each Ritz value is that close to an eigenvalue of H."""
        # a tridiagonal solver: no BLAS threads, which on a busy machine cost more than
        # the eigenproblem of a matrix this small
        from scipy.linalg import eigh_tridiagonal

        m = self.steps if steps is None else min(steps, self.steps)
        values, vectors = eigh_tridiagonal(np.array(self.alpha[:m]), np.array(self.beta[: m - 1]))
        return values, vectors, np.abs(self.beta[m - 1] * vectors[-1])


def _quadrature(hvp, theta, probe_rows, *, potential_gain, weight_decay, iterations, vectors):
    """Pool each probe's Gauss rule; converge the first probe's extremes; map λ to aλ + c."""
    nodes, weights = [], []
    for i, probe in enumerate(probe_rows.to(theta.device)):
        if not bool(probe.any()):
            raise ValueError(f"Invalid probes: probe {i} is zero on these parameters")
        lanczos = _Lanczos(hvp, probe, theta.dtype)
        lanczos.run(iterations)
        values, eigenvectors, _ = lanczos.ritz()
        nodes.append(values)
        weights.append(eigenvectors[0] ** 2)
        if i == 0:
            outer, outer_vectors = _extremes(lanczos, iterations, vectors)
    # every Ritz value lies inside the spectrum: the outermost of all is the best bound
    pooled = np.concatenate([*nodes, outer])
    order = np.argsort(np.concatenate(nodes), kind="stable")
    a, c = potential_gain, weight_decay
    return Spectrum(
        eigenvalues=a * np.concatenate(nodes)[order] + c,
        weights=np.concatenate(weights)[order] / len(probe_rows),
        extremes=(a * float(pooled.min()) + c, a * float(pooled.max()) + c),
        vectors=None if outer_vectors is None else outer_vectors.to(theta.dtype),
        vector_values=None if outer_vectors is None else a * outer + c,
    )


def _extremes(lanczos: _Lanczos, iterations: int, vectors: int):
    """Run on until the ``max(vectors, 1)`` outermost Ritz values at each end converge.

    A Ritz value μ with residual bound r lies within r of an eigenvalue; converged means
    r ≤ TOLERANCE·|μ| (or TOLERANCE² of the spectrum's scale, for μ near zero). Returns
    the Ritz values and, if asked for, the Ritz vectors (rows) of those outermost ones.
    """
    count = max(vectors, 1)
    limit = EXTENSION * iterations
    while True:
        values, eigenvectors, residuals = lanczos.ritz()
        outer = np.unique(
            np.r_[np.arange(min(count, len(values))), np.arange(len(values))[-count:]]
        )
        allowed = TOLERANCE * np.maximum(np.abs(values), TOLERANCE * lanczos.scale)
        if lanczos.invariant or np.all(residuals[outer] <= allowed[outer]):
            break
        if lanczos.steps >= limit:
            warnings.warn(
                f"The extreme Ritz values did not converge in {lanczos.steps} Lanczos steps "
                f"(residual bound {residuals[outer].max():.3g}); the extremes are inner bounds",
                RuntimeWarning,
                stacklevel=4,
            )
            break
        lanczos.run(min(lanczos.steps + CHUNK, limit))
    if not vectors:
        return values[outer], None
    coefficients = torch.from_numpy(np.ascontiguousarray(eigenvectors[:, outer]))
    coefficients = coefficients.to(lanczos.basis.device)
    return values[outer], coefficients.T @ lanczos.basis[: lanczos.steps]
