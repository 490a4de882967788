"""The curvature spectrum of a session's run, made in its slices as one snapshot.

``modes_picture`` runs ``phviz.spectrum`` at a record's θ and keeps what the Modes view
draws: the Ritz values λ of the loss's Hessian with their weights, and the unit Ritz
vectors of the few smallest and largest. ``layer_modes_work`` takes what the same needs
for each layer's block (the per-layer autopilot's) in a slice, to be computed on the
pool outside it. Both use the whole training set (an even
subsample of it for a large model, see ``spectrum_sizes``), not the batch held: that
is the potential the run settles in and the landscape draws, where a mini-batch's
spectrum would change at every switch. Both are computed with a = 1 and c = 0, so
their values are curvatures λ of L: the view maps them to the potential's μ = a·λ + c
with the gains of the moment, and a change of any gain recolours the view without a
new spectrum. The probes are seeded the same every time, so the density moves with θ,
not with the draw. No GUI code.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np

# the Lanczos rule's solver, imported with the server rather than in the first picture
import scipy.linalg  # noqa: F401
import torch

from ..spectrum import EXTENSION, ITERATIONS, PROBES, Spectrum, layer_spectra, spectrum

MODES_SHOWN = 3  # Ritz vectors kept at each end of the spectrum
# Parameters × points of one Hessian-vector product that the defaults are sized for (the
# digits MLP, 3,466 parameters on 1,438 points); a larger run takes fewer points and steps.
WORK = 5_000_000
LEAST_POINTS = 256
LEAST_ITERATIONS = 2 * MODES_SHOWN + 2


@dataclasses.dataclass(frozen=True)
class SpectrumSizes:
    """How much one spectrum computes: training ``points`` used, random ``probes`` and
    Lanczos ``iterations`` per probe."""

    points: int
    probes: int
    iterations: int


def spectrum_sizes(dim: int, n_points: int, memory_bytes: int) -> SpectrumSizes:
    """The spectrum's sizes for a model of ``dim`` parameters on ``n_points`` training
    points, within a session's ``memory_bytes``.

    Up to ``WORK`` parameters × points, the defaults of ``phviz.spectrum`` on every point.
    Above it an even subsample of the points (at least ``LEAST_POINTS``), then one probe
    and fewer steps in proportion, so a spectrum costs about what the digits MLP's does.
    The first probe's Lanczos basis (float64, up to ``EXTENSION`` × the steps, in storage
    that doubles as it grows) stays within a quarter of ``memory_bytes``.
    """
    points = n_points if dim * n_points <= WORK else max(min(n_points, LEAST_POINTS), WORK // dim)
    scale = WORK / max(1, dim * points)
    probes, iterations = (PROBES, ITERATIONS) if scale >= 1 else (1, int(ITERATIONS * scale))
    room = memory_bytes // 4 // (2 * EXTENSION * 8 * max(1, dim))
    iterations = max(LEAST_ITERATIONS, min(iterations, room))
    return SpectrumSizes(points=int(points), probes=probes, iterations=iterations)


@dataclasses.dataclass(frozen=True, eq=False)
class ModesPicture:
    """The curvature spectrum at time ``t``, as the Modes view reads it.

    ``spectrum``: of the loss L alone (a = 1, c = 0), without its vectors; ``vectors``:
    its unit Ritz vectors as float32 rows (read-only), one per entry of
    ``spectrum.vector_values`` (ascending); ``origin`` = ``vectors`` · θ(t), where the
    projections of the path are zero. ``points`` of the ``of_points`` training points
    were used; ``converged`` says whether the extremes met their tolerance.
    """

    version: int
    t: float
    spectrum: Spectrum
    vectors: np.ndarray
    origin: np.ndarray
    dim: int
    points: int
    of_points: int
    sizes: SpectrumSizes
    converged: bool = True


@dataclasses.dataclass(frozen=True, eq=False)
class LayerModes:
    """Each layer's spectrum (of L, by module prefix) at time ``t``, for the
    per-layer autopilot's request number ``request``."""

    t: float
    spectra: dict
    request: int


def model_at(trainer, theta) -> torch.nn.Module:
    """A copy of the trainer's model with parameters ``theta`` (the trainer's own model
    is never touched)."""
    model = copy.deepcopy(trainer.model)
    parameters = [p for p in model.parameters() if p.requires_grad]
    flat = torch.as_tensor(np.asarray(theta)).to(device=trainer.device, dtype=trainer.dtype)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(flat, parameters)
    return model


def training_points(dataset, count: int):
    """``count`` training points, evenly spaced through the set (all of them when it has
    no more)."""
    x, y = dataset.x_train, dataset.y_train
    if count >= len(x):
        return x, y
    keep = torch.from_numpy(np.linspace(0, len(x) - 1, count).round().astype(np.int64))
    keep = keep.to(x.device)
    return x[keep], y[keep]


def modes_picture(trainer, theta, t: float, version: int, *, memory_bytes: int) -> ModesPicture:
    """The spectrum of the training loss at ``theta``, with ``MODES_SHOWN`` Ritz vectors
    at each end."""
    dataset = trainer.dataset
    dim = trainer.system.dim
    sizes = spectrum_sizes(dim, len(dataset.x_train), memory_bytes)
    inputs, targets = training_points(dataset, sizes.points)
    model = model_at(trainer, theta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        found = spectrum(
            model,
            dataset.loss_fn,
            inputs,
            targets,
            probes=sizes.probes,
            iterations=sizes.iterations,
            seed=0,
            vectors=MODES_SHOWN,
        )
    converged = not any("did not converge" in str(w.message) for w in caught)
    vectors = found.vectors.detach().to("cpu", torch.float32).numpy()
    vectors.setflags(write=False)
    origin = vectors @ np.asarray(theta, dtype=np.float32)
    origin.setflags(write=False)
    return ModesPicture(
        version=version,
        t=float(t),
        spectrum=dataclasses.replace(found, vectors=None),
        vectors=vectors,
        origin=origin,
        dim=dim,
        points=len(inputs),
        of_points=len(dataset.x_train),
        sizes=sizes,
        converged=converged,
    )


def layer_modes_work(trainer, request: int, *, memory_bytes: int):
    """What each layer's spectrum needs, taken in a slice (a copy of the model at the
    run's θ now, the training points), and the function that computes them from it
    (``LayerModes``) anywhere, e.g. as a one-off task on the pool: the trainer itself
    is never touched there."""
    dataset, last = trainer.dataset, trainer.last
    sizes = spectrum_sizes(trainer.system.dim, len(dataset.x_train), memory_bytes)
    inputs, targets = training_points(dataset, sizes.points)
    model, loss_fn, t = model_at(trainer, last.theta), dataset.loss_fn, float(last.t)

    def work() -> LayerModes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spectra = layer_spectra(
                model,
                loss_fn,
                inputs,
                targets,
                probes=sizes.probes,
                iterations=sizes.iterations,
                seed=0,
            )
        return LayerModes(t=t, spectra=spectra, request=request)

    return work
