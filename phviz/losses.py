"""The losses phviz trains with, each with its gradient with respect to the outputs in
closed form and its NumPy form, so that phviz's MLPs can take their backward pass
written out (``phviz.routes``) rather than through autograd.

``loss_function(name)`` returns ``loss(outputs, targets)``, the scalar mean loss. Given
outputs with a leading axis of members (an ensemble), the closed forms give one loss
per member.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("cross_entropy", "mse_onehot", "mse")

_IDENTITIES: dict = {}  # (classes, dtype, device) → identity matrix, for one-hot targets


def _onehot(labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # rows of an identity matrix, not F.one_hot: the same targets without one_hot's
    # checks of the labels' range, which cost more than the loss on small batches (an
    # out-of-range label still raises in index_select)
    key = (like.shape[-1], like.dtype, like.device)
    eye = _IDENTITIES.get(key)
    if eye is None:
        eye = _IDENTITIES[key] = torch.eye(key[0], dtype=key[1], device=key[2])
    return torch.index_select(eye, 0, labels.reshape(-1)).view_as(like)


def _mse_and_gradient(outputs, targets, need_loss: bool = True):
    residual = outputs - targets
    if outputs.dim() == 3:  # one row of outputs per member of an ensemble
        size = residual[0].numel()
        loss = (residual * residual).sum((-2, -1)) / size if need_loss else None
        return loss, residual.mul_(2.0 / size)
    loss = F.mse_loss(outputs, targets) if need_loss else None
    return loss, residual.mul_(2.0 / residual.numel())  # as autograd's mse_loss_backward


def mse(outputs, targets):
    return F.mse_loss(outputs, targets)


def mse_onehot(outputs, labels):
    return F.mse_loss(outputs, _onehot(labels, outputs))


def cross_entropy(outputs, labels):
    return F.cross_entropy(outputs, labels)


def _cross_entropy_and_gradient(outputs, labels, need_loss: bool = True):
    if outputs.dim() == 3:  # one row of outputs per member of an ensemble
        onehot = _onehot(labels, outputs[0])
        log_p = torch.log_softmax(outputs, -1)
        points = outputs.shape[-2]
        loss = -(log_p * onehot).sum((-2, -1)) / points if need_loss else None
        return loss, log_p.exp_().sub_(onehot).div_(points)
    loss = F.cross_entropy(outputs, labels) if need_loss else None
    probabilities = torch.softmax(outputs, -1)
    return loss, probabilities.sub_(_onehot(labels, outputs)).div_(len(outputs))


# L(outputs, targets) and ∂L/∂outputs in closed form, for models that do their own
# backward pass (the MLP's ``functional_loss_and_gradient``); L is None when
# ``need_loss`` is false (a vector field needs only the gradient)
mse.with_output_gradient = _mse_and_gradient
mse_onehot.with_output_gradient = lambda outputs, labels, need_loss=True: _mse_and_gradient(
    outputs, _onehot(labels, outputs if outputs.dim() == 2 else outputs[0]), need_loss
)
cross_entropy.with_output_gradient = _cross_entropy_and_gradient


def _array_onehot(labels, width: int, dtype) -> np.ndarray:
    return np.eye(width, dtype=dtype)[np.asarray(labels).reshape(-1)]


def array_mse_and_gradient(outputs: np.ndarray, targets: np.ndarray, need_loss: bool = True):
    residual = outputs - targets
    # sum / size is what NumPy's mean computes, without its Python-level bookkeeping
    loss = (residual * residual).sum() / residual.size if need_loss else None
    residual *= 2.0 / residual.size
    return loss, residual


def _array_cross_entropy_and_gradient(
    outputs: np.ndarray, onehot: np.ndarray, need_loss: bool = True
):
    # outputs: points × classes, or members × points × classes (one loss per member)
    shifted = outputs - outputs.max(-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(-1, keepdims=True)
    n = outputs.shape[-2]
    loss = -(onehot * (shifted - np.log(total))).sum((-2, -1)) / n if need_loss else None
    return loss, (e / total - onehot) / n


# The same in NumPy, for small models on the CPU: (targets as the loss wants them,
# computed once: one-hot rows for labels; L and ∂L/∂outputs from those targets, L None
# when ``need_loss`` is false)
mse.array_form = (lambda targets, width, dtype: np.asarray(targets), array_mse_and_gradient)
mse_onehot.array_form = (_array_onehot, array_mse_and_gradient)
cross_entropy.array_form = (_array_onehot, _array_cross_entropy_and_gradient)


def loss_function(name: str):
    """The scalar mean loss ``loss(outputs, targets)`` called ``name``.

    Each carries ``with_output_gradient(outputs, targets, need_loss=True)`` → (L,
    ∂L/∂outputs), and ``array_form``, the same in NumPy.
    """
    losses = {"cross_entropy": cross_entropy, "mse": mse, "mse_onehot": mse_onehot}
    if name not in losses:
        raise ValueError(f"Invalid loss: {name!r} (choose one of {', '.join(LOSSES)})")
    return losses[name]


def accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((outputs.argmax(-1) == labels).float().mean())
