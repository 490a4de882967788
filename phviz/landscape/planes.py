"""Planes through parameter space and the projection of paths onto them.

A ``Plane`` is an origin and two directions in θ-space; the point at plane
coordinates (x, y) is origin + x·d1 + y·d2. Planes come from a trajectory (PCA),
from two filter-normalised random directions (Li et al., NeurIPS 2018) or from two
chosen parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from .inputs import as_matrix, check_chunk, layout_of
from .naming import parameter_index, parameter_label

PLANE_KINDS = ("pca", "random", "coordinates")
_PCA_ROWS = 512  # path points a PCA plane is fitted to (evenly spaced, last one kept)


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
        g = self.gram
        if g.det() <= 1e-10 * g[0, 0] * g[1, 1] or g[0, 0] == 0 or g[1, 1] == 0:
            raise ValueError("Invalid plane: d1 and d2 are parallel or zero (no plane)")
        self.kind, self.labels, self.explained = kind, tuple(labels), explained
        self.indices = indices  # the two parameters of a 'coordinates' plane

    @property
    def gram(self) -> torch.Tensor:
        """The 2×2 Gram matrix of d1 and d2 in float64: lengths and angle of the axes."""
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

    def points(self, xy, *, out=None, scratch=None) -> torch.Tensor:
        """One row origin + x·d1 + y·d2 per row (x, y) of ``xy`` (N, 2).

        ``out`` and ``scratch``: (N, n) tensors to build the rows in (``out`` is
        returned) instead of new memory, with the same arithmetic in the same order.
        """
        xy = torch.as_tensor(np.asarray(xy) if not torch.is_tensor(xy) else xy)
        xy = xy.to(device=self.device, dtype=self.dtype).reshape(-1, 2)
        if out is None or scratch is None:
            return self.origin + xy[:, :1] * self.d1 + xy[:, 1:] * self.d2
        torch.mul(xy[:, :1], self.d1, out=out)
        torch.add(self.origin, out, out=out)
        torch.mul(xy[:, 1:], self.d2, out=scratch)
        return torch.add(out, scratch, out=out)

    def project(self, thetas, chunk_size: int = 1024) -> Projection:
        """Plane coordinates of ``thetas`` (least squares) and their distance off the plane.

        Computed in float64 so that points built on the plane come back to their
        coordinates to rounding.
        """
        rows = as_matrix(thetas, self.dim)
        o, d = self.origin.double(), torch.stack([self.d1, self.d2]).double()
        g_inv = torch.linalg.inv(self.gram)
        xy, off = [], []
        for chunk in rows.split(check_chunk(chunk_size)):
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
        path = as_matrix(thetas, name="trajectory").double().cpu()
        n = path.shape[1]
        if n < 2:
            raise ValueError(f"Invalid trajectory: θ has {n} entry; a plane needs at least 2")
        if reference is None:
            origin = path[-1]
        else:
            origin = as_matrix(reference, n, name="reference")[0].double().cpu()
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
        layout = layout_of(model_or_layout)
        if theta is None:
            if not isinstance(model_or_layout, torch.nn.Module):
                raise ValueError("Plane.random needs theta when given a layout, not a model")
            trainable = (p for p in model_or_layout.parameters() if p.requires_grad)
            theta = parameters_to_vector(trainable).detach()
        theta = as_matrix(theta, layout.size, name="theta")[0]
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
        theta = as_matrix(theta, name="theta")[0]
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
    layout = layout_of(layout)
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

    Small problems use the exact SVD; large ones ``torch.svd_lowrank`` (randomised
    subspace iteration, seeded so a path always gives the same plane), exact for
    data of rank ≤ k and accurate to rounding otherwise.
    """
    if min(x.shape) <= 128:
        _, s, vt = torch.linalg.svd(x, full_matrices=False)
        return list(vt[:k]), [float(v) for v in s[:k]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        _, s, v = torch.svd_lowrank(x, q=min(k + 8, *x.shape), niter=6)
    return list(v.T[:k]), [float(v) for v in s[:k]]


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
