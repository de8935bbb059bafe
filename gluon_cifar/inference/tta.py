"""Class predictions for a batch, optionally averaged over test-time views (TTA)."""
from __future__ import annotations

from dataclasses import dataclass

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


def predict_probabilities(net: gluon.Block, data: nd.NDArray, ctxs: list[mx.Context],
                          tta: str = "none") -> list[nd.NDArray]:
    """Class probabilities (per shard, on their contexts; each row sums to 1) for one batch, the
    test-time views weighted as in `predict_classes`, whose argmax they share."""
    return [nd.softmax(net(x)) if tta == "none" else _tta_probabilities(net, x, tta) / VIEW_WEIGHT[tta]
            for x in shard(data, ctxs)]


VIEW_WEIGHT = {"flip": 2, "flip-shift": 8}  # the sum of the softmaxes' weights in _tta_probabilities


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


@dataclass(frozen=True)
class Ensemble:
    """Networks that vote with their class probabilities, each with its own test-time views and weight."""

    nets: tuple[gluon.Block, ...]
    ttas: tuple[str, ...]
    weights: tuple[float, ...]

    def classes(self, data: nd.NDArray, ctxs: list[mx.Context]) -> list[nd.NDArray]:
        """Class indices per shard (as predict_classes) of the weighted mean of the probabilities."""
        total: list[nd.NDArray] | None = None
        for net, tta, weight in zip(self.nets, self.ttas, self.weights):
            voted = [p * weight for p in predict_probabilities(net, data, ctxs, tta)]
            total = voted if total is None else [t + v for t, v in zip(total, voted)]
        return [t.argmax(axis=1) for t in total]


def classes_of(net: gluon.Block | Ensemble, data: nd.NDArray, ctxs: list[mx.Context], tta: str = "none"
               ) -> list[nd.NDArray]:
    """predict_classes for one network (with `tta`), Ensemble.classes for several."""
    return net.classes(data, ctxs) if isinstance(net, Ensemble) else predict_classes(net, data, ctxs, tta)
