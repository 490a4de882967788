"""Loss landscapes: planes through parameter space, projections, batched surfaces.

A ``Plane`` is an origin and two directions in θ-space; the point at plane
coordinates (x, y) is origin + x·d1 + y·d2. Planes come from a trajectory (PCA),
from two filter-normalised random directions (Li et al., NeurIPS 2018) or from two
chosen parameters. ``Potential`` evaluates a·L(θ) + (c/2)‖θ‖² for many θ at once
(``torch.func.vmap`` in chunks); ``loss_surface`` is its grid over a plane.
``LandscapeWindow`` keeps a plane and a surface up to date with a growing path;
``phase_portrait`` gives the energy contours of one coordinate's (θ_i, p_i) slice and
``phase_curve`` that coordinate's recorded path.

No GUI code: the views draw what these functions return (numpy arrays).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..dynamics import ParameterLayout

PLANE_KINDS = ("pca", "random", "coordinates")
_PCA_ROWS = 512  # path points a PCA plane is fitted to (evenly spaced, last one kept)


# --------------------------------------------------------------------- inputs
def _layout_of(obj) -> ParameterLayout:
    """A ParameterLayout from a model, a layout, or anything with ``.layout``."""
    if isinstance(obj, ParameterLayout):
        return obj
    if isinstance(obj, torch.nn.Module):
        return ParameterLayout(obj)
    layout = getattr(obj, "layout", None)
    if isinstance(layout, ParameterLayout):
        return layout
    raise TypeError(
        f"Expected a model, a ParameterLayout or a system with .layout, got {type(obj).__name__}"
    )


def _as_vector(v) -> torch.Tensor:
    t = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
    return t.reshape(-1)


def _as_matrix(thetas, n: int | None = None, *, name: str = "thetas") -> torch.Tensor:
    """Parameter vectors as a 2-D float tensor (one row each); a single vector is one row."""
    if isinstance(thetas, torch.Tensor):
        t = thetas.detach()
    elif isinstance(thetas, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(thetas))
    elif isinstance(thetas, Sequence) and len(thetas) and not np.isscalar(thetas[0]):
        t = torch.stack([_as_vector(v) for v in thetas])
    else:
        t = torch.as_tensor(np.asarray(thetas))
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[0] == 0:
        raise ValueError(
            f"Invalid {name}: expected one parameter vector or a (points, parameters) array, "
            f"got shape {tuple(t.shape)}"
        )
    if n is not None and t.shape[1] != n:
        raise ValueError(
            f"Invalid {name}: vectors of length {t.shape[1]}, expected length {n} "
            "(one entry per scalar parameter)"
        )
    if not t.is_floating_point():
        t = t.double()
    return t


def check_extent(extent) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) as floats, or ValueError when empty or not finite."""
    try:
        values = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid extent: {extent!r} (expected (xmin, xmax, ymin, ymax))"
        ) from None
    if len(values) != 4:
        raise ValueError(f"Invalid extent: {extent!r} (expected 4 numbers: xmin, xmax, ymin, ymax)")
    xmin, xmax, ymin, ymax = values
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Invalid extent: {extent!r} (all four numbers must be finite)")
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"Invalid extent: {extent!r} (empty: need xmin < xmax and ymin < ymax)")
    return values


def check_resolution(resolution) -> tuple[int, int]:
    """(nx, ny) from an int or a pair; each at least 2 grid points."""
    pair = resolution if isinstance(resolution, (tuple, list)) else (resolution, resolution)
    if len(pair) != 2:
        raise ValueError(f"Invalid resolution: {resolution!r} (an int or a pair (nx, ny))")
    for r in pair:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise TypeError(f"Invalid resolution: {resolution!r} (expected whole numbers)")
        if r < 2:
            raise ValueError(
                f"Invalid resolution: {resolution!r} (need at least 2 points per axis)"
            )
    return int(pair[0]), int(pair[1])


def _check_chunk(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"Invalid chunk_size: {chunk_size!r} (expected a whole number)")
    if chunk_size < 1:
        raise ValueError(f"Invalid chunk_size: {chunk_size!r} (must be >= 1)")
    return int(chunk_size)


# ------------------------------------------------------------ coordinate names
_SHORT = re.compile(r"^([wb])(\d)(\d)?$")
_INDEXED = re.compile(r"^(.+?)\s*\[([\d,\s]+)\]$")


def parameter_index(layout_or_model, key) -> int:
    """The flat index in θ of one scalar parameter, named in a friendly way.

    ``key`` may be a flat index (``5``), a name with a 0-based index as in
    ``model.named_parameters()`` (``"0.weight[1, 0]"``, ``"2.bias[3]"``), a pair
    (``("0.weight", (1, 0))``), or the paper's short form for the first layer, 1-based:
    ``"w12"`` is row 1, column 2 of the first weight matrix and ``"b2"`` the second
    entry of the first bias.
    """
    layout = _layout_of(layout_or_model)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= key < layout.size:
            raise ValueError(f"Invalid parameter index: {key} (θ has {layout.size} entries)")
        return int(key)
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        name, index = key
        return _named_index(layout, name, index if isinstance(index, tuple) else (index,), key)
    if not isinstance(key, str):
        raise TypeError(f"Invalid parameter: {key!r} (give an index, a name or a pair)")
    text = key.strip()
    short = _SHORT.match(text)
    if short:
        kind, a, b = short.groups()
        suffix = "weight" if kind == "w" else "bias"
        ndim = 2 if kind == "w" else 1
        first = next(
            (
                n
                for n, s in zip(layout.names, layout.shapes, strict=True)
                if n.rsplit(".", 1)[-1] == suffix and len(s) == ndim
            ),
            None,
        )
        if first is None or (kind == "w") != (b is not None):
            raise ValueError(f"Invalid parameter: {key!r} (the model has no such {suffix})")
        index = (int(a) - 1, int(b) - 1) if b is not None else (int(a) - 1,)
        return _named_index(layout, first, index, key)
    indexed = _INDEXED.match(text)
    if indexed:
        name, inside = indexed.groups()
        index = tuple(int(s) for s in inside.replace(" ", "").split(",") if s)
        return _named_index(layout, name, index, key)
    if text in layout.names:
        return _named_index(layout, text, (), key)
    raise ValueError(
        f"Invalid parameter: {key!r} (use a flat index, 'name[i, j]' with a name from "
        f"{', '.join(layout.names)}, or 'w11'/'b1' for the first layer)"
    )


def _named_index(layout: ParameterLayout, name: str, index: tuple, key) -> int:
    if name not in layout.names:
        raise ValueError(
            f"Invalid parameter: {key!r} (no parameter {name!r}; names are "
            f"{', '.join(layout.names)})"
        )
    k = layout.names.index(name)
    shape, numel = tuple(layout.shapes[k]), layout.numels[k]
    if index == () and numel == 1:
        return layout.offsets[k]
    if len(index) == 1 and len(shape) != 1:
        flat = index[0]  # an index into the flattened tensor
        if not 0 <= flat < numel:
            raise ValueError(f"Invalid parameter: {key!r} ({name} has {numel} entries)")
        return layout.offsets[k] + flat
    if len(index) != len(shape) or any(not 0 <= i < s for i, s in zip(index, shape, strict=True)):
        raise ValueError(f"Invalid parameter: {key!r} ({name} has shape {shape})")
    return layout.offsets[k] + int(np.ravel_multi_index(index, shape))


def parameter_label(layout_or_model, index: int) -> str:
    """The name of flat index ``index`` as ``"0.weight[1, 0]"`` (0-based)."""
    layout = _layout_of(layout_or_model)
    if not 0 <= index < layout.size:
        raise ValueError(f"Invalid parameter index: {index} (θ has {layout.size} entries)")
    k = int(np.searchsorted(layout.offsets, index, side="right")) - 1
    within = np.unravel_index(index - layout.offsets[k], tuple(layout.shapes[k]))
    return f"{layout.names[k]}[{', '.join(str(int(i)) for i in within)}]"


# ---------------------------------------------------------------------- planes
class Projection(NamedTuple):
    """Plane coordinates (N, 2) and distance off the plane (N,) of N parameter vectors."""

    xy: np.ndarray
    off_plane: np.ndarray


class Plane:
    """The plane {origin + x·d1 + y·d2} through parameter space.

    ``kind`` says how it was made ('pca', 'random', 'coordinates' or 'custom'),
    ``labels`` name its axes, and ``explained`` is, for a PCA plane, the share of the
    path's variance (around its mean) that lies along d1 and d2 (else ``None``).
    Directions need not be orthogonal or of unit length, only independent:
    projections solve the 2×2 least-squares problem with their Gram matrix.
    """

    def __init__(
        self,
        origin: torch.Tensor,
        d1: torch.Tensor,
        d2: torch.Tensor,
        *,
        kind: str = "custom",
        labels: tuple[str, str] = ("d1", "d2"),
        explained: float | None = None,
        indices: tuple[int, int] | None = None,
    ):
        vectors = [torch.as_tensor(v) for v in (origin, d1, d2)]
        for name, v in zip(("origin", "d1", "d2"), vectors, strict=True):
            if v.dim() != 1 or v.numel() == 0:
                raise ValueError(
                    f"Invalid {name}: expected a flat vector, got shape {tuple(v.shape)}"
                )
            if not v.is_floating_point():
                raise TypeError(f"Invalid {name}: expected a floating tensor, got {v.dtype}")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"Invalid {name}: it holds NaN or infinite entries")
        lengths = [v.numel() for v in vectors]
        if len(set(lengths)) != 1:
            raise ValueError(
                f"Invalid plane: origin, d1 and d2 have lengths {lengths}; they must be equal"
            )
        self.origin, self.d1, self.d2 = vectors
        self.d2 = self.d2.to(self.origin)
        self.d1 = self.d1.to(self.origin)
        g = self._gram()
        if g.det() <= 1e-10 * g[0, 0] * g[1, 1] or g[0, 0] == 0 or g[1, 1] == 0:
            raise ValueError("Invalid plane: d1 and d2 are parallel or zero (no plane)")
        self.kind, self.labels, self.explained = kind, tuple(labels), explained
        self.indices = indices  # the two parameters of a 'coordinates' plane

    def _gram(self) -> torch.Tensor:
        d = torch.stack([self.d1, self.d2]).double()
        return d @ d.T

    def __repr__(self) -> str:
        share = "" if self.explained is None else f", explained={self.explained:.3f}"
        return f"Plane(kind={self.kind!r}, dim={self.dim}, labels={self.labels}{share})"

    @property
    def dim(self) -> int:
        """Length of the parameter vectors."""
        return self.origin.numel()

    @property
    def device(self) -> torch.device:
        return self.origin.device

    @property
    def dtype(self) -> torch.dtype:
        return self.origin.dtype

    def to(self, device=None, dtype=None) -> Plane:
        """The same plane with its tensors on ``device`` in ``dtype``."""
        moved = [v.to(device=device, dtype=dtype) for v in (self.origin, self.d1, self.d2)]
        return Plane(
            *moved,
            kind=self.kind,
            labels=self.labels,
            explained=self.explained,
            indices=self.indices,
        )

    def point(self, x: float, y: float) -> torch.Tensor:
        """origin + x·d1 + y·d2."""
        return self.origin + x * self.d1 + y * self.d2

    def points(self, xy) -> torch.Tensor:
        """One row origin + x·d1 + y·d2 per row (x, y) of ``xy`` (N, 2)."""
        xy = torch.as_tensor(np.asarray(xy) if not torch.is_tensor(xy) else xy)
        xy = xy.to(device=self.device, dtype=self.dtype).reshape(-1, 2)
        return self.origin + xy[:, :1] * self.d1 + xy[:, 1:] * self.d2

    def project(self, thetas, chunk_size: int = 1024) -> Projection:
        """Plane coordinates of ``thetas`` (least squares) and their distance off the plane.

        Computed in float64 so that points built on the plane come back to their
        coordinates to rounding.
        """
        rows = _as_matrix(thetas, self.dim)
        o, d = self.origin.double(), torch.stack([self.d1, self.d2]).double()
        g_inv = torch.linalg.inv(d @ d.T)
        xy, off = [], []
        for chunk in rows.split(_check_chunk(chunk_size)):
            r = chunk.to(device=o.device, dtype=torch.float64) - o
            c = (r @ d.T) @ g_inv  # g_inv is symmetric
            xy.append(c)
            off.append(torch.linalg.vector_norm(r - c @ d, dim=1))
        return Projection(torch.cat(xy).cpu().numpy(), torch.cat(off).cpu().numpy())

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_trajectory(cls, thetas, reference=None, *, seed: int = 0) -> Plane:
        """The PCA plane of a path θ(t): its two leading principal directions, through
        ``reference`` (default: the path's last point).

        ``explained`` is the share of the path's variance along the two directions;
        a path lying in a plane gives 1. Directions are orthonormal. Where the path
        spans fewer than two directions (one point, a straight line), the plane is
        completed by seeded random orthonormal directions.
        """
        path = _as_matrix(thetas, name="trajectory").double().cpu()
        n = path.shape[1]
        if n < 2:
            raise ValueError(f"Invalid trajectory: θ has {n} entry; a plane needs at least 2")
        if reference is None:
            origin = path[-1]
        else:
            origin = _as_matrix(reference, n, name="reference")[0].double().cpu()
        if path.shape[0] > _PCA_ROWS:
            keep = np.unique(np.linspace(0, path.shape[0] - 1, _PCA_ROWS).round().astype(int))
            path = path[torch.from_numpy(keep)]
        centred = path - path.mean(0)
        total = float((centred * centred).sum())
        directions, values = _leading_directions(centred, 2, seed)
        rank_tol = 1e-12 * max(total, 1e-300)
        found = [d for d, s in zip(directions, values, strict=True) if s * s > rank_tol]
        captured = sum(s * s for s in values[: len(found)])
        explained = 1.0 if total <= 0.0 else min(1.0, captured / total)
        directions = _complete(found, n, 2, seed)
        return cls(
            origin,
            directions[0],
            directions[1],
            kind="pca",
            labels=("PC1", "PC2"),
            explained=explained,
        )

    @classmethod
    def random(cls, model_or_layout, theta=None, *, seed: int = 0) -> Plane:
        """Two random directions through ``theta``, filter-normalised (Li et al. 2018).

        Each direction is drawn Gaussian; within every weight tensor (2-D or more),
        each filter (a slice along the first axis: one output neuron of a linear
        layer) is rescaled to the norm of the weights it perturbs; biases and other
        1-D parameters are zeroed. ``theta`` defaults to the model's parameters.
        """
        layout = _layout_of(model_or_layout)
        if theta is None:
            if not isinstance(model_or_layout, torch.nn.Module):
                raise ValueError("Plane.random needs theta when given a layout, not a model")
            theta = torch.cat(
                [p.detach().reshape(-1) for p in model_or_layout.parameters() if p.requires_grad]
            )
        theta = _as_matrix(theta, layout.size, name="theta")[0]
        generator = torch.Generator().manual_seed(int(seed))
        directions = []
        for _ in range(2):
            d = torch.randn(layout.size, generator=generator, dtype=torch.float64)
            directions.append(filter_normalise(layout, d, theta.cpu()).to(theta))
        return cls(theta, directions[0], directions[1], kind="random", labels=("δ1", "δ2"))

    @classmethod
    def coordinates(cls, theta, i, j, layout=None) -> Plane:
        """The plane of two parameters: axes are θ_i and θ_j themselves.

        The other coordinates are frozen at ``theta``'s values, so the point at
        (x, y) is ``theta`` with θ_i = x and θ_j = y. ``i`` and ``j`` are flat indices,
        or (given ``layout``, a model or a ParameterLayout) any key that
        ``parameter_index`` accepts, e.g. ``"w11"`` and ``"w12"``.
        """
        theta = _as_matrix(theta, name="theta")[0]
        labels = []
        indices = []
        for key in (i, j):
            if layout is not None:
                k = parameter_index(layout, key)
            elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
                k = int(key)
                if not 0 <= k < theta.numel():
                    raise ValueError(
                        f"Invalid parameter index: {k} (θ has {theta.numel()} entries)"
                    )
            else:
                raise ValueError(f"Invalid parameter: {key!r} (names need layout=model or layout)")
            indices.append(k)
            labels.append(
                key
                if isinstance(key, str)
                else (parameter_label(layout, k) if layout is not None else f"θ[{k}]")
            )
        if indices[0] == indices[1]:
            raise ValueError(f"Invalid coordinates: {i!r} and {j!r} are the same parameter")
        origin = theta.clone()
        origin[indices] = 0.0
        d1, d2 = torch.zeros_like(theta), torch.zeros_like(theta)
        d1[indices[0]], d2[indices[1]] = 1.0, 1.0
        return cls(origin, d1, d2, kind="coordinates", labels=tuple(labels), indices=tuple(indices))


def filter_normalise(layout, direction: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``direction`` with each filter scaled to the norm of ``theta``'s, biases zeroed."""
    layout = _layout_of(layout)
    out = []
    for d, w in zip(
        layout.unflatten(direction), layout.unflatten(theta.to(direction)), strict=True
    ):
        if d.dim() <= 1:
            out.append(torch.zeros_like(d).reshape(-1))
            continue
        d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
        d_norms = d_rows.norm(dim=1, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
        scale = w_rows.norm(dim=1, keepdim=True) / d_norms
        out.append((d_rows * scale).reshape(-1))
    return torch.cat(out)


def _leading_directions(x: torch.Tensor, k: int, seed: int):
    """The top ``k`` right singular vectors of ``x`` (float64) and singular values.

    Small problems use the exact SVD; large ones a seeded randomised subspace
    iteration, exact for data of rank ≤ k and accurate to rounding otherwise.
    """
    n_rows, n_cols = x.shape
    if min(n_rows, n_cols) <= 128:
        _, s, vt = torch.linalg.svd(x, full_matrices=False)
        return list(vt[:k]), [float(v) for v in s[:k]]
    q = min(k + 8, n_rows, n_cols)
    generator = torch.Generator().manual_seed(int(seed))
    basis = torch.linalg.qr(x @ torch.randn(n_cols, q, generator=generator, dtype=x.dtype))[0]
    for _ in range(6):
        basis = torch.linalg.qr(x @ (x.T @ basis))[0]
    _, s, vt = torch.linalg.svd(basis.T @ x, full_matrices=False)
    return list(vt[:k]), [float(v) for v in s[:k]]


def _complete(found: list[torch.Tensor], n: int, k: int, seed: int) -> list[torch.Tensor]:
    """Extend orthonormal ``found`` to ``k`` orthonormal vectors with seeded random ones."""
    generator = torch.Generator().manual_seed(int(seed) + 1)
    basis = [v / v.norm() for v in found]
    while len(basis) < k:
        v = torch.randn(n, generator=generator, dtype=torch.float64)
        for b in basis:
            v = v - (v @ b) * b
        if v.norm() > 1e-6:
            basis.append(v / v.norm())
    return basis[:k]


# ------------------------------------------------------------------ potentials
class Potential:
    """V(θ) = a·L(θ) + (c/2)·θᵀθ on fixed data, for many θ at once.

    Rows of θ are evaluated with ``torch.func.vmap`` over ``functional_call`` (with
    the model's buffers), ``chunk_size`` rows at a time so memory stays bounded, on
    the model's device and in its dtype. ``batched=False`` evaluates row by row in a
    Python loop (a reference, and a way out for models vmap cannot handle).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        potential_gain: float = 1.0,
        weight_decay=0.0,
        chunk_size: int = 256,
        batched: bool = True,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if len(inputs) != len(targets):
            raise ValueError(f"Invalid data: {len(inputs)} inputs but {len(targets)} targets")
        self.model, self.loss_fn = model, loss_fn
        self.layout = ParameterLayout(model)
        first = next(p for p in model.parameters() if p.requires_grad)
        self.device, self.dtype = first.device, first.dtype
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)
        if self.inputs.is_floating_point():
            self.inputs = self.inputs.to(self.dtype)
        if isinstance(potential_gain, bool) or not isinstance(potential_gain, (int, float)):
            raise TypeError(f"Invalid potential_gain: {potential_gain!r} (expected a number)")
        if not (math.isfinite(potential_gain) and potential_gain > 0):
            raise ValueError(f"Invalid potential_gain: {potential_gain!r} (must be > 0)")
        self.potential_gain = float(potential_gain)
        if isinstance(weight_decay, torch.Tensor) and weight_decay.dim() > 0:
            if weight_decay.shape != (self.layout.size,):
                raise ValueError(
                    f"Invalid weight_decay: shape {tuple(weight_decay.shape)}, "
                    f"expected ({self.layout.size},)"
                )
            weight_decay = weight_decay.to(device=self.device, dtype=self.dtype)
        elif float(weight_decay) < 0:
            raise ValueError(f"Invalid weight_decay: {weight_decay!r} (must be >= 0)")
        else:
            weight_decay = float(weight_decay)
        self.weight_decay = weight_decay
        self.chunk_size = _check_chunk(chunk_size)
        self.batched = bool(batched)
        self._buffers = dict(model.named_buffers())
        self._batched_loss = vmap(self._loss)

    @classmethod
    def from_trainer(cls, trainer, *, batch: str = "train", chunk_size: int = 256) -> Potential:
        """The trainer's potential with its current gains.

        ``batch="train"``: the whole training set (the loss the run reports);
        ``batch="current"``: the mini-batch it holds now (the switched potential H_k).
        """
        system = trainer.system
        if batch == "train":
            inputs, targets = trainer.dataset.x_train, trainer.dataset.y_train
        elif batch == "current":
            if system.inputs is None:
                raise ValueError("Invalid batch: 'current', but the trainer holds no batch")
            # read between two steps (or on the training thread) for a matching pair
            inputs, targets = system.inputs, system.targets
        else:
            raise ValueError(f"Invalid batch: {batch!r} (choose 'train' or 'current')")
        return cls(
            trainer.model,
            trainer.dataset.loss_fn,
            inputs,
            targets,
            potential_gain=system.potential_gain,
            weight_decay=system.weight_decay,
            chunk_size=chunk_size,
        )

    def _loss(self, theta: torch.Tensor) -> torch.Tensor:
        params = dict(zip(self.layout.names, self.layout.unflatten(theta), strict=True))
        out = functional_call(self.model, (params, self._buffers), (self.inputs,))
        return self.loss_fn(out, self.targets)

    def _decay(self, thetas: torch.Tensor) -> torch.Tensor:
        if isinstance(self.weight_decay, float) and self.weight_decay == 0.0:
            return thetas.new_zeros(thetas.shape[0])
        return 0.5 * (self.weight_decay * thetas * thetas).sum(-1)

    @torch.no_grad()
    def evaluate_rows(self, thetas: torch.Tensor) -> torch.Tensor:
        """V at each row of a (N, n) tensor already on the model's device and dtype."""
        if self.batched:
            losses = self._batched_loss(thetas)
        else:
            losses = torch.stack([self._loss(row) for row in thetas])
        return self.potential_gain * losses + self._decay(thetas)

    def __call__(self, thetas) -> np.ndarray:
        """V at each parameter vector (rows of an (N, n) array, or one vector)."""
        rows = _as_matrix(thetas, self.layout.size)
        out = [
            self.evaluate_rows(chunk.to(device=self.device, dtype=self.dtype))
            for chunk in rows.split(self.chunk_size)
        ]
        return torch.cat(out).double().cpu().numpy()

    def on_plane(self, plane: Plane, xy) -> np.ndarray:
        """V at plane coordinates ``xy`` (N, 2), the points built chunk by chunk."""
        plane = plane.to(self.device, self.dtype)
        xy = torch.as_tensor(np.asarray(xy, dtype=np.float64)).reshape(-1, 2)
        out = [self.evaluate_rows(plane.points(chunk)) for chunk in xy.split(self.chunk_size)]
        return torch.cat(out).double().cpu().numpy()

    def surface(self, plane: Plane, extent, resolution=51):
        """(xs, ys, Z), Z[i, j] = V(origin + xs[j]·d1 + ys[i]·d2) (see ``loss_surface``)."""
        if plane.dim != self.layout.size:
            raise ValueError(
                f"Invalid plane: its vectors have length {plane.dim}, the model has "
                f"{self.layout.size} parameters"
            )
        xmin, xmax, ymin, ymax = check_extent(extent)
        nx, ny = check_resolution(resolution)
        xs, ys = np.linspace(xmin, xmax, nx), np.linspace(ymin, ymax, ny)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # row-major over (i, j)
        return xs, ys, self.on_plane(plane, grid).reshape(ny, nx)

    def profile(self, plane: Plane, thetas) -> PathProfile:
        """For a path: its projection, V at each point, and V at each projection."""
        rows = _as_matrix(thetas, self.layout.size)
        projection = plane.project(rows)
        return PathProfile(
            projection.xy, projection.off_plane, self(rows), self.on_plane(plane, projection.xy)
        )


class PathProfile(NamedTuple):
    """A path seen on a plane: where it projects, how far off it is, and two potentials.

    ``actual`` is V at each θ(t); ``on_plane`` is the surface's value at its
    projection. Where they differ, the picture misleads: the path is off the plane.
    """

    xy: np.ndarray
    off_plane: np.ndarray
    actual: np.ndarray
    on_plane: np.ndarray


def loss_surface(
    model: torch.nn.Module,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    plane: Plane,
    *,
    extent=(-1.0, 1.0, -1.0, 1.0),
    resolution=51,
    potential_gain: float = 1.0,
    weight_decay=0.0,
    chunk_size: int = 256,
    batched: bool = True,
):
    """The potential a·L + (c/2)‖θ‖² over a grid on ``plane``.

    Returns (xs, ys, Z) as numpy arrays with Z.shape == (len(ys), len(xs)) and
    Z[i, j] the potential at origin + xs[j]·d1 + ys[i]·d2. ``resolution`` is points
    per axis (an int, or (nx, ny)); grid points are evaluated with vmap in chunks of
    ``chunk_size`` on the model's device. Points where the loss overflows give inf
    or NaN, left for the caller to mask.
    """
    potential = Potential(
        model,
        loss_fn,
        inputs,
        targets,
        potential_gain=potential_gain,
        weight_decay=weight_decay,
        chunk_size=chunk_size,
        batched=batched,
    )
    return potential.surface(plane, extent, resolution)


def trainer_surface(
    trainer, plane: Plane, *, extent, resolution=51, batch="train", chunk_size: int = 256
):
    """``loss_surface`` for a Trainer: its model, gains, and training set or current batch."""
    potential = Potential.from_trainer(trainer, batch=batch, chunk_size=chunk_size)
    return potential.surface(plane, extent, resolution)


def extent_around(xy, *, margin: float = 0.25, min_span: float = 1e-3, square: bool = False):
    """(xmin, xmax, ymin, ymax) around points ``xy`` (N, 2), padded on every side.

    The padding is ``margin`` times the larger of the two spans (and of ``min_span``),
    so that a path that is nearly a line still gets a window with some breadth.
    ``square=True`` gives both axes the same span (for equal-aspect plots).
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError("Invalid points: need at least one finite (x, y) pair")
    if not (margin >= 0 and min_span > 0):
        raise ValueError(f"Invalid margin/min_span: {margin!r}, {min_span!r} (need >= 0, > 0)")
    lo, hi = pts.min(0), pts.max(0)
    span = max(float((hi - lo).max()), min_span)
    pad = margin * span + 0.5 * np.maximum(0.0, min_span - (hi - lo))
    lo, hi = lo - pad, hi + pad
    if square:
        centre, half = 0.5 * (lo + hi), 0.5 * float((hi - lo).max())
        lo, hi = centre - half, centre + half
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


# --------------------------------------------------------------- phase portraits
def phase_portrait(
    potential: Potential,
    theta,
    index: int,
    *,
    q_extent: tuple[float, float],
    p_extent: tuple[float, float],
    resolution=51,
    inertia: float = 1.0,
):
    """Energy of the one-dimensional slice through ``theta`` along coordinate ``index``.

    Returns (qs, ps, H) with H.shape == (len(ps), len(qs)) and
    H[a, b] = V(θ with θ_index = qs[b]) + ps[a]² / (2·m), the other coordinates and
    momenta frozen (their kinetic energy, a constant, left out). Its level sets are
    the paths (θ_i, p_i) would follow without damping if the rest stood still.
    ``inertia`` is m_i (a float, or the per-parameter tensor of the system).
    """
    row = _as_matrix(theta, potential.layout.size, name="theta")[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        index = parameter_index(potential.layout, index)
    if not 0 <= index < row.numel():
        raise ValueError(f"Invalid parameter index: {index} (θ has {row.numel()} entries)")
    m = (
        float(inertia[index])
        if isinstance(inertia, torch.Tensor) and inertia.dim()
        else float(inertia)
    )
    if not m > 0:
        raise ValueError(f"Invalid inertia: {m!r} (must be > 0)")
    qmin, qmax, pmin, pmax = check_extent((*q_extent, *p_extent))
    nq, n_p = check_resolution(resolution)
    qs, ps = np.linspace(qmin, qmax, nq), np.linspace(pmin, pmax, n_p)
    line = row.repeat(nq, 1).to(torch.float64)
    line[:, index] = torch.from_numpy(qs)
    potential_q = potential(line)
    kinetic_p = ps * ps / (2.0 * m)
    return qs, ps, kinetic_p[:, None] + potential_q[None, :]


def trainer_phase_portrait(
    trainer, index, *, q_extent, p_extent, resolution=51, theta=None, batch: str = "train"
):
    """``phase_portrait`` for a Trainer, with its inertia and gains.

    ``theta`` (e.g. a Record's ``.theta``) defaults to the trainer's current θ;
    ``batch`` is 'train' (the whole training set) or 'current' (the batch held).
    """
    system = trainer.system
    theta = trainer.xi[: system.dim] if theta is None else theta
    potential = Potential.from_trainer(trainer, batch=batch)
    index = parameter_index(system.layout, index)
    return phase_portrait(
        potential,
        theta,
        index,
        q_extent=q_extent,
        p_extent=p_extent,
        resolution=resolution,
        inertia=system.inertia,
    )


def phase_curve(records, index: int, tracked) -> tuple[np.ndarray, np.ndarray]:
    """(θ_i(t), p_i(t)) of coordinate ``index`` from Records' sampled coordinates.

    Records carry θ and p at the trainer's ``tracked`` indices only (``theta_sample``,
    ``p_sample``); ``index`` must be one of them.
    """
    tracked = np.asarray(tracked).reshape(-1)
    where = np.flatnonzero(tracked == index)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not len(where):
        raise ValueError(
            f"Invalid coordinate: {index!r} is not tracked (tracked: {tracked.tolist()})"
        )
    k = int(where[0])
    q = np.array([float(r.theta_sample[k]) for r in records])
    p = np.array([float(r.p_sample[k]) for r in records])
    return q, p


# ------------------------------------------------------------------ live window
class WindowState(NamedTuple):
    """One consistent picture: the plane, its surface, and the path projected on it."""

    plane: Plane | None
    xs: np.ndarray
    ys: np.ndarray
    Z: np.ndarray
    path_xy: np.ndarray  # (N, 2), the stored path on ``plane``
    path_t: np.ndarray  # (N,) time of each stored point
    off_plane: np.ndarray  # (N,)
    explained: float  # share of the stored path's variance on the plane
    version: int  # counts refreshes; a view redraws the surface when it changes
    reason: str  # why the last refresh happened


_EMPTY = np.zeros(0)


def _direction_length(plane: Plane) -> float:
    """Mean length of d1 and d2: θ-distance per unit of the plane's coordinates."""
    return float(np.sqrt(np.diag(plane._gram().cpu().numpy())).mean())


class LandscapeWindow:
    """A plane and surface that follow a growing trajectory, for live views.

    Feed it with ``update(records_or_thetas)`` (Records, whose ``.theta`` and ``.t``
    are used, or parameter vectors); it returns True when it refreshed the plane and
    surface. It refreshes when there is no surface yet, when the newest point leaves
    the window, when the newest point is farther off the plane than ``tolerance``
    times the window's half-width (measured in θ), or when a PCA plane
    holds less than ``1 − tolerance`` of the variance share it had when built (these
    last two at most once per ``min_seconds``). On a refresh the stored path is
    reprojected onto the new plane, so path and surface always agree; PCA directions
    keep their sign from one plane to the next.

    One ``update`` does at most one surface evaluation (plus, for PCA, one fit). It
    is meant to be called from one background thread; readers on other threads use
    ``state`` (or the properties), which is swapped in whole, never half-built.
    ``source`` is a Trainer (its gains and data are read again at each refresh) or a
    ``Potential``. The stored path is thinned to at most ``max_points`` points
    (every other one dropped, the newest kept), with their times in ``path_t``.

    The window spans the projected path with ``margin`` on every side and at least
    ``min_span`` per axis (default: a tenth of ‖θ‖ for PCA and coordinate planes,
    1 filter-normalised unit for random planes).
    """

    def __init__(
        self,
        source,
        *,
        kind: str = "pca",
        coordinates: tuple = (0, 1),
        resolution=41,
        margin: float = 0.3,
        tolerance: float = 0.2,
        min_span: float | None = None,
        batch: str = "train",
        seed: int = 0,
        max_points: int = 2000,
        chunk_size: int = 256,
        min_seconds: float = 0.5,
    ):
        if kind not in PLANE_KINDS:
            raise ValueError(f"Invalid kind: {kind!r} (choose one of {', '.join(PLANE_KINDS)})")
        if not 0 < tolerance < 1:
            raise ValueError(f"Invalid tolerance: {tolerance!r} (must be in (0, 1))")
        if not margin >= 0:
            raise ValueError(f"Invalid margin: {margin!r} (must be >= 0)")
        if min_span is not None and not min_span > 0:
            raise ValueError(f"Invalid min_span: {min_span!r} (must be > 0, or None)")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 4:
            raise ValueError(f"Invalid max_points: {max_points!r} (must be a whole number >= 4)")
        if batch not in ("train", "current"):
            raise ValueError(f"Invalid batch: {batch!r} (choose 'train' or 'current')")
        if not min_seconds >= 0:
            raise ValueError(f"Invalid min_seconds: {min_seconds!r} (must be >= 0)")
        self.min_seconds = float(min_seconds)
        self._refreshed_at = -math.inf
        self.source, self.kind, self.batch = source, kind, batch
        self.resolution = check_resolution(resolution)
        self.margin, self.tolerance, self.min_span = float(margin), float(tolerance), min_span
        self.seed, self.max_points, self.chunk_size = seed, max_points, _check_chunk(chunk_size)
        layout = self._potential().layout
        self.dim = layout.size
        self.coordinate_keys = tuple(coordinates)
        self.coordinates = tuple(parameter_index(layout, k) for k in coordinates)
        if kind == "coordinates" and self.coordinates[0] == self.coordinates[1]:
            raise ValueError(f"Invalid coordinates: {coordinates!r} (the same parameter twice)")
        self._updating = threading.Lock()
        self._state = self._empty_state()
        self._clear_path()

    # -------------------------------------------------------------- reading
    @property
    def state(self) -> WindowState:
        """The latest consistent picture (safe to read from any thread)."""
        return self._state

    @property
    def plane(self) -> Plane | None:
        return self._state.plane

    @property
    def surface(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs, ys, Z) as ``loss_surface`` returns them (empty before the first update)."""
        s = self._state
        return s.xs, s.ys, s.Z

    @property
    def extent(self) -> tuple[float, float, float, float] | None:
        s = self._state
        if s.plane is None:
            return None
        return (float(s.xs[0]), float(s.xs[-1]), float(s.ys[0]), float(s.ys[-1]))

    @property
    def path_xy(self) -> np.ndarray:
        return self._state.path_xy

    @property
    def path_t(self) -> np.ndarray:
        return self._state.path_t

    @property
    def off_plane(self) -> np.ndarray:
        return self._state.off_plane

    @property
    def explained(self) -> float:
        return self._state.explained

    @property
    def version(self) -> int:
        return self._state.version

    # -------------------------------------------------------------- feeding
    def reset(self) -> None:
        """Forget the path and the surface (e.g. after the run was reset)."""
        with self._updating:
            self._clear_path()
            self._state = self._empty_state()

    def update(self, items, *, refresh: bool = True) -> bool:
        """Append new path points; refresh when needed. Returns True if it refreshed.

        ``items`` is a Record or a list of them, or parameter vectors (one, or rows
        of an array). A Record earlier in time than the last one stored starts a new
        path (the run was reset). ``refresh=False`` only appends (projected on the
        plane in use): the caller refreshes later, when ``pending()`` says so and it
        has the time, as a live view with many sessions does.
        """
        thetas, ts = self._unpack(items)
        with self._updating:
            if len(ts) and len(self._ts) and not np.isnan(ts[0]) and ts[0] < self._ts[-1]:
                self._clear_path()
            if len(thetas):
                self._append(thetas, ts)
            if not len(self._ts):
                return False
            reason = self._reason() if refresh else ""
            if reason:
                self._refresh(reason)
                return True
            s = self._state
            self._publish(s.plane, s.xs, s.ys, s.Z, s.version, s.reason)
            return False

    def pending(self) -> str:
        """Why the window would refresh now ('' if it would not)."""
        with self._updating:
            return self._reason() if len(self._ts) else ""

    def refresh(self, reason: str = "asked") -> bool:
        """Rebuild plane and surface now (e.g. after a change of gains or of batch)."""
        with self._updating:
            if not len(self._ts):
                return False
            self._refresh(reason)
            return True

    def profile(self) -> PathProfile | None:
        """The stored path's true potential next to the surface's at its projection.

        Costs about one surface evaluation per ``resolution²`` path points; call it
        when the comparison is wanted, not on every update.
        """
        with self._updating:
            plane, thetas = self._state.plane, self._thetas
        if plane is None:
            return None
        return self._potential().profile(plane, thetas)

    # -------------------------------------------------------------- internals
    def _empty_state(self) -> WindowState:
        return WindowState(
            None, _EMPTY, _EMPTY, np.zeros((0, 0)), np.zeros((0, 2)), _EMPTY, _EMPTY, 1.0, 0, ""
        )

    def _clear_path(self) -> None:
        self._thetas = np.zeros((0, self.dim), np.float32)
        self._ts, self._xy, self._off = _EMPTY, np.zeros((0, 2)), _EMPTY
        self._count = 0
        # running sums of (θ − shift) and ‖θ − shift‖² over the stored path (variance)
        self._shift, self._sum, self._sum_sq = None, np.zeros(self.dim), 0.0
        self._baseline = 1.0  # stored-path variance share of the plane when it was built

    def _unpack(self, items):
        if hasattr(items, "theta"):
            items = [items]
        if isinstance(items, (list, tuple)) and not items:
            return np.zeros((0, self.dim), np.float32), _EMPTY
        if isinstance(items, (list, tuple)) and hasattr(items[0], "theta"):
            thetas = np.stack([np.asarray(r.theta, np.float32).reshape(-1) for r in items])
            ts = np.array([float(r.t) for r in items])
        else:
            thetas = _as_matrix(items, self.dim).float().cpu().numpy()
            ts = np.full(len(thetas), np.nan)
        if thetas.shape[1] != self.dim:
            raise ValueError(
                f"Invalid thetas: length {thetas.shape[1]}, the model has {self.dim} parameters"
            )
        return thetas, ts

    def _append(self, thetas: np.ndarray, ts: np.ndarray) -> None:
        if np.isnan(ts).any():  # plain vectors: numbered after the points seen so far
            ts = np.arange(self._count, self._count + len(thetas), dtype=np.float64)
        self._count += len(thetas)
        self._thetas = np.concatenate([self._thetas, thetas])
        self._ts = np.concatenate([self._ts, ts])
        self._accumulate(thetas)
        plane = self._state.plane
        if plane is not None:
            p = plane.project(thetas)
            self._xy = np.concatenate([self._xy, p.xy])
            self._off = np.concatenate([self._off, p.off_plane])
        if len(self._ts) > self.max_points:  # keep every other point, and the newest
            keep = np.unique(np.r_[np.arange(0, len(self._ts), 2), len(self._ts) - 1])
            self._thetas, self._ts = self._thetas[keep], self._ts[keep]
            if len(self._xy):
                self._xy, self._off = self._xy[keep], self._off[keep]
            self._shift, self._sum, self._sum_sq = None, np.zeros(self.dim), 0.0
            self._accumulate(self._thetas)

    def _accumulate(self, thetas: np.ndarray) -> None:
        if self._shift is None:  # sums around a point of the path avoid cancellation
            self._shift = thetas[0].astype(np.float64)
        d = thetas.astype(np.float64) - self._shift
        self._sum += d.sum(0)
        self._sum_sq += float((d * d).sum())

    def _explained(self, plane: Plane) -> float:
        """Share of the stored path's variance that lies along ``plane``'s directions.

        The projection is linear, so the in-plane part of θ_t − mean is the plane
        vector of (xy_t − mean xy): its squared length is (Δxy)ᵀ G (Δxy), G the Gram
        matrix of d1, d2.
        """
        n = len(self._ts)
        total = self._sum_sq - float(self._sum @ self._sum) / max(n, 1)
        if n < 2 or total <= 1e-12 * max(self._sum_sq, 1e-300):
            return 1.0
        a = self._xy - self._xy.mean(0)
        g = plane._gram().cpu().numpy()
        return float(min(1.0, np.einsum("ni,ij,nj->", a, g, a) / total))

    def _reason(self) -> str:
        plane = self._state.plane
        if plane is None:
            return "start"
        x, y = self._xy[-1]
        xmin, xmax, ymin, ymax = self.extent
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            return "path left the window"
        if time.monotonic() - self._refreshed_at < self.min_seconds:
            return ""  # the softer reasons wait, so a refresh is not due on every update
        half = 0.5 * min(xmax - xmin, ymax - ymin) * _direction_length(plane)  # in θ units
        if self._off[-1] > self.tolerance * half:
            return "path left the plane"
        if self.kind == "pca" and self._explained(plane) < (1 - self.tolerance) * self._baseline:
            return "plane lost the path's variance"
        return ""

    def _potential(self) -> Potential:
        if isinstance(self.source, Potential):
            return self.source
        if hasattr(self.source, "system") and hasattr(self.source, "dataset"):
            return Potential.from_trainer(self.source, batch=self.batch, chunk_size=self.chunk_size)
        raise TypeError(
            f"Invalid source: {type(self.source).__name__} (give a Trainer or a Potential)"
        )

    def _new_plane(self, potential: Potential) -> Plane:
        head = torch.from_numpy(self._thetas[-1].astype(np.float64))
        if self.kind == "random":
            return Plane.random(potential.layout, head, seed=self.seed)
        if self.kind == "coordinates":
            i, j = self.coordinate_keys
            return Plane.coordinates(head, i, j, layout=potential.layout)
        plane = Plane.from_trajectory(self._thetas, seed=self.seed)
        previous = self._state.plane
        if previous is None or previous.kind != "pca":
            return plane
        d1, d2 = plane.d1, plane.d2  # keep the picture from flipping mirror-wise
        if float(d1 @ previous.d1.to(d1)) < 0:
            d1 = -d1
        if float(d2 @ previous.d2.to(d2)) < 0:
            d2 = -d2
        return Plane(
            plane.origin, d1, d2, kind="pca", labels=plane.labels, explained=plane.explained
        )

    def _refresh(self, reason: str) -> None:
        potential = self._potential()
        plane = self._new_plane(potential)
        projection = plane.project(self._thetas)
        self._xy, self._off = projection.xy, projection.off_plane
        min_span = self.min_span
        if min_span is None and self.kind == "random":
            min_span = 1.0  # filter-normalised units: a step as large as the weights
        elif min_span is None:  # a tenth of ‖θ‖, in units of the directions' length
            min_span = max(
                1e-3, 0.1 * float(np.linalg.norm(self._thetas[-1])) / _direction_length(plane)
            )
        extent = extent_around(self._xy, margin=self.margin, min_span=min_span)
        xs, ys, z = potential.surface(plane, extent, self.resolution)
        self._baseline = self._explained(plane)
        self._refreshed_at = time.monotonic()
        self._publish(plane, xs, ys, z, self._state.version + 1, reason)

    def _publish(self, plane, xs, ys, z, version, reason) -> None:
        explained = self._explained(plane) if plane is not None else 1.0
        self._state = WindowState(
            plane,
            xs,
            ys,
            z,
            self._xy.copy(),
            self._ts.copy(),
            self._off.copy(),
            explained,
            version,
            reason,
        )
