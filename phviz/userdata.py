"""Your own data: points drawn on the page, a CSV file, or a link, as a ``Dataset``.

Two feature columns and a label make a classification (labels are whole numbers
0, 1, …, at least two of them); two feature columns and two target columns make a
regression, such as a vector field. Every check says what is wrong with the file.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import torch

from .data import Dataset

MIN_POINTS = 4
MAX_CLASSES = 8
# Points a link can carry (a URL stays well under browsers' limits of a few kB).
MAX_LINK_POINTS = 200


def points_dataset(
    x,
    y,
    *,
    task: str | None = None,
    train_fraction: float = 0.75,
    seed: int = 0,
    max_points: int | None = None,
    name: str = "your data",
) -> Dataset:
    """A ``Dataset`` from points ``x`` (N, 2) and labels (N,) or targets (N, 2),
    shuffled with ``seed`` and split into train and test by ``train_fraction``
    (1.0: all points train and test alike). ``task`` is guessed from ``y`` if not given."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"Invalid points: expected two coordinates a point, got {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"Invalid points: {len(x)} points but {len(y)} labels or targets")
    n = len(x)
    if n < MIN_POINTS:
        raise ValueError(f"Too few points: {n} (at least {MIN_POINTS})")
    if max_points is not None and n > max_points:
        raise ValueError(f"Too many points: {n:,} (at most {max_points:,} on this server)")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("Invalid points: every coordinate, label and target must be finite")
    if task is None:
        task = "regression" if y.ndim == 2 else "classification"
    if task == "classification":
        labels = _labels(y)
        n_classes = int(labels.max()) + 1
        targets = torch.as_tensor(labels, dtype=torch.long)
        loss = "cross_entropy"
    elif task == "regression":
        if y.ndim != 2 or y.shape[1] != 2:
            raise ValueError(f"Invalid targets: expected two a point, got shape {y.shape}")
        n_classes, loss = 0, "mse"
        targets = torch.as_tensor(y, dtype=torch.float32)
    else:
        raise ValueError(f"Invalid task: {task!r} (classification or regression)")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"Invalid train_fraction: {train_fraction!r} (must be in (0, 1])")
    inputs = torch.as_tensor(x, dtype=torch.float32)
    if train_fraction < 1.0:
        order = torch.as_tensor(np.random.default_rng(seed).permutation(n))
        n_train = min(n - 1, max(1, round(train_fraction * n)))
        train, test = order[:n_train], order[n_train:]
    else:
        train = test = torch.arange(n)
    return Dataset(
        name,
        task,
        loss,
        inputs[train],
        targets[train],
        inputs[test],
        targets[test],
        n_classes,
    )


def _labels(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"Invalid labels: expected one a point, got shape {y.shape}")
    if not np.array_equal(y, np.round(y)) or y.min() < 0:
        raise ValueError("Invalid labels: classes must be whole numbers 0, 1, 2, …")
    labels = y.astype(int)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"Only one class ({present[0]}): draw or load points of two classes")
    if labels.max() >= MAX_CLASSES:
        top = labels.max()
        raise ValueError(f"Too many classes: labels go up to {top} (at most {MAX_CLASSES})")
    return labels


def read_points_csv(text: str | bytes, *, max_points: int | None = None):
    """(x (N, 2), y) from CSV text: columns x1, x2 and a label, or x1, x2 and two
    targets. A first row with no number in it is a header. A ``ValueError`` names the
    row and column of the first bad cell."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("Invalid CSV: the file is not text (UTF-8)") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and not any(_parses(c) for c in rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError("Invalid CSV: no rows of numbers")
    width = len(rows[0])
    if width not in (3, 4):
        raise ValueError(
            f"Invalid CSV: {width} columns; expected 3 (x1, x2, label) or 4 (x1, x2, y1, y2)"
        )
    if max_points is not None and len(rows) > max_points:
        raise ValueError(f"Too many rows: {len(rows):,} (at most {max_points:,} on this server)")
    values = np.empty((len(rows), width))
    for i, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"Invalid CSV: row {i} has {len(row)} columns, the first {width}")
        for j, cell in enumerate(row):
            if not _is_number(cell):
                raise ValueError(f"Invalid CSV: row {i}, column {j + 1} is not a number: {cell!r}")
            values[i - 1, j] = float(cell)
    y = values[:, 2] if width == 3 else values[:, 2:]
    return values[:, :2], y


def _parses(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_number(cell: str) -> bool:
    return _parses(cell) and bool(np.isfinite(float(cell)))


def encode_points(x, labels) -> str:
    """Labelled points as short text for a link: ``x1,x2,label;…`` (3 decimals)."""
    x = np.asarray(x, dtype=float)
    labels = np.asarray(labels).astype(int)
    if len(x) > MAX_LINK_POINTS:
        raise ValueError(f"Too many points for a link: {len(x)} (at most {MAX_LINK_POINTS})")
    return ";".join(f"{a:.3f},{b:.3f},{c}" for (a, b), c in zip(x, labels, strict=True))


def decode_points(text: str):
    """(x, labels) from ``encode_points``' text; a ``ValueError`` names the bad point."""
    items = [item for item in text.split(";") if item.strip()]
    if len(items) > MAX_LINK_POINTS:
        raise ValueError(f"Too many points in the link: {len(items)} (at most {MAX_LINK_POINTS})")
    x, labels = np.empty((len(items), 2)), np.empty(len(items), dtype=int)
    for i, item in enumerate(items):
        parts = item.split(",")
        try:
            if len(parts) != 3:
                raise ValueError
            x[i] = float(parts[0]), float(parts[1])
            labels[i] = int(parts[2])
        except ValueError:
            raise ValueError(f"Invalid point {i + 1} in the link: {item!r} (x1,x2,label)") from None
    return x, labels
