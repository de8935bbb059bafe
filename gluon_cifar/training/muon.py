"""Muon for convolution filters, Nesterov SGD for everything else: airbench94_muon's optimizer in MXNet.

Muon (K. Jordan, 2024, kellerjordan.github.io/posts/muon) replaces a filter's update by the nearest
orthogonal matrix to it: the momentum-averaged gradient, as an (out_channels, in_channels x kh x kw)
matrix, goes through a few Newton-Schulz iterations that push all its singular values towards 1.
Every direction the gradient has then moves the filter by about the same step, so the rare
directions learn as fast as the common ones. K. Jordan's airbench94_muon.py reaches airbench94's
94% in 8 epochs instead of 9.9 with it (and batches of 2000 instead of 1024). As there, before each
update a filter is scaled back to norm sqrt(out_channels): every filter feeds a BatchNorm, which
cancels its scale, so the scale only sets how far a step of fixed size turns it, and fixing it
keeps that the same all run (it replaces weight decay for the filters).

Parameters that are not 4-D (BatchNorm offsets, biases, the classifier) are updated by MXNet's own
NAG: the same formula and kernel as `nag` (the sgd recipe's optimizer) with the trainer's rate.
Filters step at `filter_lr` x (the trainer's rate / `lr`): the same schedule, their own scale.
"""
from __future__ import annotations

import math

from mxnet import nd
from mxnet.optimizer import NAG, register

# The quintic's coefficients, airbench94_muon.py's: chosen for the steepest slope at 0, so that 3 steps lift
# small singular values far (x 41); those above a few percent of the largest land in about [0.7, 1.2] rather
# than exactly at 1, which K. Jordan found to train as well (tests/test_muon.py measures it).
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 3


def orthogonalized(matrix: nd.NDArray, steps: int = NEWTON_SCHULZ_STEPS, eps: float = 1e-7) -> nd.NDArray:
    """About the orthogonal factor U V^T of `matrix` (2-D) = U S V^T: its singular values all moved near 1."""
    a, b, c = NEWTON_SCHULZ
    x = nd.broadcast_div(matrix, (nd.norm(matrix) + eps).reshape((1, 1)))  # every singular value <= 1
    tall = matrix.shape[0] > matrix.shape[1]
    if tall:  # iterate on the smaller Gram matrix
        x = x.T
    for _ in range(steps):
        gram = nd.dot(x, x, transpose_b=True)
        x = a * x + nd.dot(b * gram + c * nd.dot(gram, gram), x)
    return x.T if tall else x


@register
class Muon(NAG):
    """MXNet's `nag` for all but the 4-D parameters (conv filters), which Muon updates:

        state = filter_momentum * state + grad          (grad rescaled, as the trainer asks)
        step  = grad + filter_momentum * state           (Nesterov's look-ahead)
        weight = weight * sqrt(out_channels) / |weight|
        weight = weight - filter_lr * (lr_now / lr) * orthogonalized(step as a matrix)

    Weight decay does not apply to filters: their norm is reset each step instead.
    """

    def __init__(self, filter_lr: float = 0.24, filter_momentum: float = 0.6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filter_lr, self.filter_momentum = filter_lr, filter_momentum
        self.base_lr = self.lr  # the rate the trainer was built with: filter_lr goes with it

    def create_state(self, index: int, weight: nd.NDArray) -> nd.NDArray | None:
        if weight.ndim == 4:
            return nd.zeros(weight.shape, weight.context, dtype=weight.dtype)
        return super().create_state(index, weight)

    def _update_impl(self, index: int, weight: nd.NDArray, grad: nd.NDArray, state, multi_precision: bool = False):
        if weight.ndim != 4:
            return super()._update_impl(index, weight, grad, state, multi_precision)
        self._update_count(index)
        # the trainer's rate (lr_mult included) relative to the one it was built with: the schedule's factor
        lr = self.filter_lr * self._get_lr(index) / self.base_lr
        momentum, master = (state[0], state[1]) if multi_precision else (state, weight)
        grad = grad.astype(master.dtype, copy=False) * self.rescale_grad  # (the product is a new array already)
        if self.clip_gradient:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        momentum[:] = self.filter_momentum * momentum + grad
        step = grad + self.filter_momentum * momentum
        out_channels = master.shape[0]
        master[:] = nd.broadcast_mul(master, (math.sqrt(out_channels) / nd.norm(master)).reshape((1, 1, 1, 1)))
        master[:] = master - lr * orthogonalized(step.reshape((out_channels, -1))).reshape(master.shape)
        if multi_precision:
            master.astype(weight.dtype).copyto(weight)
        return None
