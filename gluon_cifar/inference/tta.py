"""Class predictions for a batch, optionally averaged over test-time views (TTA)."""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon, nd

from ..contexts import shard


def predict_classes(net: gluon.Block, data: nd.NDArray, ctxs: list[mx.Context], tta: str = "none") -> list[nd.NDArray]:
    """Class indices (float, per shard, on their contexts) for one batch; no host sync.

    `tta` (test-time augmentation, one of config.TTAS): "flip" averages the probabilities of each
    image and its mirror; "flip-shift" also those of the image shifted one pixel up-left and one
    down-right (borders reflected) and their mirrors: 6 views, weighted 1/4 for the unshifted pair
    and 1/8 for the rest.
    """
    return [_tta_probabilities(net, x, tta).argmax(axis=1) for x in shard(data, ctxs)]


def _tta_probabilities(net: gluon.Block, x: nd.NDArray, tta: str) -> nd.NDArray:
    if tta == "none":
        return net(x)  # the argmax is the same without the softmax

    def both_ways(view: nd.NDArray) -> nd.NDArray:
        return nd.softmax(net(view)) + nd.softmax(net(nd.flip(view, axis=3)))

    if tta == "flip":
        return both_ways(x)
    if tta != "flip-shift":  # users' values were checked in config; this guards library callers
        raise ValueError(f"unknown test-time augmentation {tta!r}: none, flip or flip-shift")
    height, width = x.shape[2:]
    padded = nd.pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 1, 1))
    down_right = padded[:, :, 0:height, 0:width]
    up_left = padded[:, :, 2:height + 2, 2:width + 2]
    return 2 * both_ways(x) + both_ways(down_right) + both_ways(up_left)
