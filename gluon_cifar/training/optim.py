"""The optimizer, the loss, and the arithmetic they run in (float32, or mixed precision)."""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp

from ..config import Config
from ..errors import ConfigError
from .schedules import lr_schedule


def make_trainer(net: gluon.Block, cfg: Config, batches_per_epoch: int, kvstore: object = "device",
                 update_on_kvstore: bool | None = None) -> gluon.Trainer:
    """SGD (Nesterov's with cfg.nesterov) with cfg's schedule; `kvstore`/`update_on_kvstore` as given
    by distributed.connect.

    BatchNorm offsets learn cfg.bias_lr_mult times faster, with their weight decay divided by as
    much, so lr x wd (the decay per step) stays the same for every parameter.
    """
    if cfg.bias_lr_mult != 1:
        offsets = net.collect_params(".*beta")
        offsets.setattr("lr_mult", cfg.bias_lr_mult)
        offsets.setattr("wd_mult", 1 / cfg.bias_lr_mult)
    return gluon.Trainer(net.collect_params(), "nag" if cfg.nesterov else "sgd",
                         {"learning_rate": cfg.lr, "momentum": cfg.momentum, "wd": cfg.wd,
                          "lr_scheduler": lr_schedule(cfg, batches_per_epoch)},
                         kvstore=kvstore, update_on_kvstore=update_on_kvstore)


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


def enable_mixed_precision(ctxs: list[mx.Context], dtype: str) -> None:
    """Make MXNet compute convolutions and dense layers in `dtype`; call before the network is built.

    "float16" (`--amp`): GPUs, with dynamic loss scaling (`amp.init_trainer`, `amp.scale_loss`).
    Untested here (no GPU); it follows MXNet's AMP tutorial. "bfloat16" (`--precision`): CPUs;
    weights, gradients and BatchNorm stay float32, and no loss scaling is needed (bfloat16 has
    float32's range). Patches MXNet's operators for the whole process: the one piece of global
    state we touch, by necessity; a process trains in one precision.
    """
    on_gpu = [c.device_type == "gpu" for c in ctxs]
    if dtype == "float16" and not all(on_gpu):
        raise ConfigError("--amp (float16) needs GPU contexts (--gpus); on CPUs use --precision bfloat16")
    if dtype == "bfloat16" and any(on_gpu):
        raise ConfigError("--precision bfloat16 needs CPU contexts: MXNet 1.9 has no GPU bfloat16; use --amp")
    amp.init(target_dtype=dtype)
