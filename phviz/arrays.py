"""phviz's MLP differentiated in NumPy, every buffer allocated once: the gradient route
for small networks on the CPU, where a step's time goes to calling operations on a few
numbers rather than to arithmetic, and a NumPy call costs a fraction of a torch one."""

from __future__ import annotations

import math

import numpy as np

from .losses import array_mse_and_gradient


class ArrayGradient:
    """s·∇L(θ) of an ``MLP`` on the batch held (``hold``), in NumPy, into a flat array;
    L at that θ is left in ``loss``.

    A small network's evaluation is a few dozen NumPy calls on arrays of a few thousand
    numbers, and each call and each pass over such an array counts, so no array is
    allocated per call and the passes are few:

    - Activations are stored one row per unit (units × points), and each layer's input
      carries an extra row of constants: [W | b] then acts on it in one matrix
      product, bias included, and the gradient of [W | b] is one product too. One
      gather takes every [W | b] out of θ, one scatter puts their gradients back.
    - Softplus layers keep a = βz and u = β·softplus(z) = log1p(e^a) instead of z and
      softplus(z): β moves from every (unit, point) entry onto the inputs and the
      constant rows (once), and the slope σ(a) = e^a/(1 + e^a) reuses e^a.

    The formulas are torch's own (softplus' threshold included), so the numbers agree
    with autograd's to rounding. With ``members`` (an ensemble), θ has one row per
    member and every product is a stack of them (``np.matmul``); ``loss`` is then one
    value per member, and ``scale`` may be a column of one value per member.
    """

    def __init__(self, model, points: int, dtype, output_gradient, members: int | None = None):
        self.activation = model.activation
        sizes, dtype, n = model.sizes, np.dtype(dtype), points
        lead = () if members is None else (members,)
        self.members = members
        self._product = np.dot if members is None else np.matmul
        gain = float(model.softplus_beta) if model.activation == "softplus" else 1.0
        if len(sizes) == 2:  # no hidden layer: nothing to scale
            gain = 1.0
        self.gain, self.points, self.dtype = gain, n, dtype
        self.output_gradient = output_gradient
        # The output layer gives γz. The mean squared error's gradient is
        # 2/size·(z − targets): γz − γ·targets is one subtraction, and γ and 2/size join
        # the final scaling. Any other loss gets z, as points × units in Fortran order
        # (a transposed view), and targets in that order for contiguous arithmetic.
        self.residual = output_gradient is array_mse_and_gradient
        self.targets = np.empty((sizes[-1], n), dtype) if self.residual else None
        size = sizes[-1] * n
        self.factor = 2.0 / (size * gain * gain) if self.residual else 1.0 / gain
        # each layer's inputs with their row of constants (γ, so that [W | b] gives γz);
        # the data, the first layer's input, is the same for every member
        self.inputs = [np.empty((sizes[0] + 1, n), dtype)]
        self.inputs += [np.empty((*lead, m + 1, n), dtype) for m in sizes[1:-1]]
        for h in self.inputs:
            h[..., -1, :] = gain
        self.z = [np.empty((*lead, k, n), dtype) for k in sizes[1:]]
        self.slope = [np.empty((*lead, k, n), dtype) for k in sizes[1:-1]]
        self.back = [np.empty((*lead, m + 1, n), dtype) for m in sizes[1:-1]]
        self.scratch = np.empty((*lead, max(sizes[1:]), n), dtype)
        # [W | b] of every layer in one array, and their gradients in another; θ stores
        # W (row by row) then b, layer by layer: ``order`` lists θ's index of each entry
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        self.weights, self.grads, order, offset = [], [], [], 0
        flat = np.empty((*lead, sum(k * (m + 1) for m, k in pairs)), dtype)
        flat_grad = np.empty_like(flat)
        for m, k in pairs:
            w = offset + np.arange(k * m).reshape(k, m)
            b = offset + k * m + np.arange(k)[:, None]
            order.append(np.hstack([w, b]).ravel())
            end = offset + k * (m + 1)  # [W | b] has as many entries as W and b
            self.weights.append(flat[..., offset:end].reshape(*lead, k, m + 1))
            self.grads.append(flat_grad[..., offset:end].reshape(*lead, k, m + 1))
            offset = end
        self.flat_weights, self.flat_grads = flat, flat_grad
        self.order = np.concatenate(order)
        self.scatter = np.argsort(self.order)
        self.gathered = np.empty_like(flat)
        # Softplus is linear where a = βz > 20, as torch's. In float32, log1p(e^a) rounds
        # to a itself there and σ(a) to 1: the formulas are torch's linear piece until
        # e^a overflows, and that shows in the gradient (∞ or NaN), which is then taken
        # again with the masks. (Outside a solve, which ignores overflow, NumPy warns of
        # it first.) In float64 the masks are taken wherever a passes 20.
        self.threshold = 88.0 if dtype == np.float32 else 20.0
        self.checked = not (dtype == np.float32 and self.activation == "softplus")
        self.loss = math.nan  # L on the batch held at the θ of the latest call

    def hold(self, x: np.ndarray, targets: np.ndarray) -> None:
        """Take a batch of ``points`` rows (targets as the loss's ``array_form`` gives them)."""
        np.multiply(x.T, self.gain, out=self.inputs[0][:-1])
        if self.residual:
            np.multiply(targets.T, self.gain, out=self.targets)
        else:
            self.targets = np.asfortranarray(targets)

    def __call__(self, theta: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
        """``out`` ← scale·∇L(θ) (θ and ``out`` flat, in the model's parameter order)."""
        self._gradient(theta, scale, out, self.checked)
        if not self.checked and not math.isfinite(np.add.reduce(out, axis=None)):
            self._gradient(theta, scale, out, True)  # e^βz overflowed: take the masks
        return out

    def value(self, theta: np.ndarray):
        """L(θ) alone (one per member for an ensemble): the forward pass, no gradient."""
        self._forward(theta, True)
        return self.loss

    def _forward(self, theta, checked: bool):
        """The forward pass and L; returns ∂L/∂(the last layer's γz)."""
        # the indices are in range: "wrap" spares the copy that "raise" makes of ``out``
        theta.take(self.order, axis=-1, out=self.flat_weights, mode="wrap")
        weights, inputs, last = self.weights, self.inputs, len(self.weights) - 1
        product = self._product
        for i in range(last):
            z = self.z[i]
            product(weights[i], inputs[i], out=z)
            self._activate(z, inputs[i + 1][..., :-1, :], self.slope[i], checked)
        z = self.z[last]
        product(weights[last], inputs[last], out=z)
        if self.residual:
            g = np.subtract(z, self.targets, out=z)
            if self.members is None:
                self.loss = float(np.dot(g.reshape(-1), g.reshape(-1))) * self.factor / 2.0
            else:
                self.loss = np.einsum("mkn,mkn->m", g, g) * (self.factor / 2.0)
            return g
        if self.gain != 1.0:
            z *= 1.0 / self.gain
        loss, g = self.output_gradient(z.swapaxes(-1, -2), self.targets, True)
        self.loss = float(loss) if self.members is None else loss
        return g.swapaxes(-1, -2)

    def _gradient(self, theta, scale, out, checked: bool) -> None:
        g = self._forward(theta, checked)
        weights, inputs, last = self.weights, self.inputs, len(self.weights) - 1
        product = self._product
        for i in range(last, -1, -1):
            product(g, inputs[i].swapaxes(-1, -2), out=self.grads[i])
            if i > 0:
                back = self.back[i - 1]
                product(weights[i].swapaxes(-1, -2), g, out=back)
                g = self.slope[i - 1]
                np.multiply(back[..., :-1, :], g, out=g)
        # the layers' gradients came out γ times too large (their inputs are γ·h), and
        # for the mean squared error without its factor 2/(size·γ): ``factor`` undoes both
        self.flat_grads.take(self.scatter, axis=-1, out=self.gathered, mode="wrap")
        np.multiply(self.gathered, scale * self.factor, out=out)

    def _activate(self, z: np.ndarray, h: np.ndarray, slope: np.ndarray, checked: bool) -> None:
        """h ← act(z) and slope ← act′(z); for softplus z is a = βz, h is
        β·softplus(z) = log1p(e^a) and slope σ(a), ``checked``: masked where a passes
        the threshold."""
        name, e = self.activation, self.scratch[..., : z.shape[-2], :]
        if name == "softplus":
            limit = self.threshold
            above = checked and float(np.maximum.reduce(z, axis=None)) > limit
            if above:
                np.minimum(z, limit, out=e)
                np.exp(e, out=e)
            else:
                np.exp(z, out=e)
            np.log1p(e, out=h)
            np.add(e, 1.0, out=slope)
            np.divide(e, slope, out=slope)  # σ(a), as softplus_backward
            if above:
                linear = z > limit
                np.copyto(h, z, where=linear)
                np.copyto(slope, 1.0, where=linear)
        elif name == "tanh":
            np.tanh(z, out=h)
            np.multiply(h, h, out=slope)
            np.subtract(1.0, slope, out=slope)
        elif name == "sigmoid":
            np.negative(z, out=e)
            np.exp(e, out=e)
            e += 1.0
            np.reciprocal(e, out=h)
            np.subtract(1.0, h, out=slope)
            slope *= h
        else:
            np.maximum(z, 0.0, out=h)
            np.greater(h, 0.0, out=slope)
