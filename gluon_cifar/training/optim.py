"""The optimizer, the loss, and the arithmetic they run in (float32, or mixed precision)."""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp

from ..config import Config
from .muon import Muon


def make_trainer(net: gluon.Block, cfg: Config, kvstore: object = "device",
                 update_on_kvstore: bool | None = None) -> gluon.Trainer:
    """SGD (Nesterov's with cfg.nesterov) at cfg.lr, with cfg.optimizer muon Muon for the conv filters
    (muon.py); `kvstore`/`update_on_kvstore` as given by distributed.connect. The schedule is not the
    optimizer's: the training loop sets each update's rate (schedules.learning_rate), so nothing of it is
    pickled with the trainer's state.

    BatchNorm offsets learn cfg.bias_lr_mult times faster, with their weight decay divided by as
    much, so lr x wd (the decay per step) stays the same for every parameter. With muon a fastnet's
    whitening bias goes with them, as airbench94_muon groups it (airbench94 leaves it with the weights).
    """
    offsets = list(net.collect_params(".*beta").values())
    if cfg.optimizer == "muon" and hasattr(net, "whiten"):
        offsets.append(net.whiten.bias)
    for offset in offsets:
        offset.lr_mult, offset.wd_mult = cfg.bias_lr_mult, 1 / cfg.bias_lr_mult
    hyper = {"learning_rate": cfg.lr, "momentum": cfg.momentum, "wd": cfg.wd}
    if cfg.optimizer == "muon":
        optimizer = Muon(filter_lr=cfg.muon_lr, filter_momentum=cfg.muon_momentum, **hyper)
    else:
        optimizer = mx.optimizer.create("nag" if cfg.nesterov else "sgd", **hyper)
    return gluon.Trainer(net.collect_params(), optimizer, kvstore=kvstore, update_on_kvstore=update_on_kvstore)


class SmoothedCrossEntropy(gluon.loss.Loss):
    """Softmax cross-entropy against (1 - smoothing) * one_hot(label) + smoothing / classes; takes
    class indices like SoftmaxCrossEntropyLoss, which it equals at smoothing 0."""

    def __init__(self, smoothing: float, **kwargs) -> None:
        super().__init__(weight=None, batch_axis=0, **kwargs)
        self._smoothing = smoothing

    def hybrid_forward(self, F, pred, label):
        log_p = F.log_softmax(pred, axis=-1)
        return -(1 - self._smoothing) * F.pick(log_p, label, axis=-1) - self._smoothing * F.mean(log_p, axis=-1)


def make_loss(cfg: Config) -> gluon.loss.Loss:
    if cfg.label_smoothing:
        return SmoothedCrossEntropy(cfg.label_smoothing)
    return gluon.loss.SoftmaxCrossEntropyLoss()


def enable_mixed_precision(precision: str) -> None:
    """Make MXNet compute convolutions and dense layers in `precision` (from precision.decide, which
    checked it against the devices) if it is bfloat16 or float16; call before the network is built.

    bfloat16 (CPUs): weights, gradients and BatchNorm stay float32, no loss scaling needed (bfloat16
    has float32's range). float16 (GPUs): with dynamic loss scaling (`amp.init_trainer`,
    `amp.scale_loss`), following MXNet's AMP tutorial; untested here (no GPU). Patches MXNet's
    operators for the whole process: the one piece of global state we touch, by necessity; a
    process trains in one precision.
    """
    if precision in ("bfloat16", "float16"):
        amp.init(target_dtype=precision)
