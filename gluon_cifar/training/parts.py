"""Everything a training loop needs, built in one place: network, trainer, loss, averaging, data.

The run itself and the time budget's probe (a throwaway copy timed on the first steps) both build
through `build_training`, so the probe measures what the run will do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp

from ..config import Config
from ..distributed.cluster import Cluster, initialize_kvstore
from ..models import build_model
from .averaging import Lookahead
from .optim import make_loss, make_trainer


@dataclass
class TrainingParts:
    net: gluon.Block
    trainer: gluon.Trainer
    loss_fn: gluon.loss.Loss
    train_data: Iterable  # batches of (images, labels); `batch_size` and `start_at` if it has them
    valid_data: Iterable | None = None
    lookahead: Lookahead | None = None  # called after every update
    workers: int = 1  # processes of a distributed run, each stepping on an equal share of the batch
    amp: bool = False  # float16 loss scaling (amp.init and amp.init_trainer done)
    # (epochs, parameters): the parameters learn in the first `epochs` epochs only (0: throughout)
    learn_first: tuple[int, tuple[gluon.Parameter, ...]] = (0, ())

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_data)

    def start_epoch(self, epoch: int) -> None:
        """Freeze what learns only in the first epochs, once `epoch` (1-based) is past them. A frozen
        parameter gets no gradient, so MXNet skips the backward work that only it needed (for a
        fastnet's whitening bias: a GELU backward and two layout reorders of the largest
        activation). Idempotent, so a resumed run calls it like a fresh one."""
        epochs, params = self.learn_first
        if epochs and epoch > epochs:
            for param in params:
                param.grad_req = "null"


def build_training(cfg: Config, ctxs: list[mx.Context], cluster: Cluster, train_data: Iterable,
                   valid_data: Iterable | None, n_classes: int, sample: np.ndarray | None) -> TrainingParts:
    """The network (initialised from cfg.seed; `sample`: a fastnet's whitening images) and what
    trains it, ready for the first step on every context and worker."""
    net = build_model(cfg.model, n_classes, ctxs, seed=cfg.seed, sample=sample)
    if cfg.hybridize:
        net.hybridize(static_alloc=True)
    # Lookahead rewrites the weights between steps: they must be the ones the optimizer updates,
    # not a kvstore's copy (which MXNet keeps for several local contexts unless told not to).
    update_on_kvstore = False if cfg.lookahead_every else cluster.update_on_kvstore
    trainer = make_trainer(net, cfg, len(train_data), cluster.kvstore, update_on_kvstore)
    lookahead = Lookahead(net, cfg.lookahead_every, len(train_data), cfg.epochs) if cfg.lookahead_every else None
    if cluster.distributed:
        initialize_kvstore(trainer)
    if cfg.amp:
        amp.init_trainer(trainer)
    learn_first = (cfg.whiten_bias_epochs, (net.whiten.bias,)) if cfg.whiten_bias_epochs else (0, ())
    return TrainingParts(net, trainer, make_loss(cfg), train_data, valid_data, lookahead, cluster.num_workers,
                         cfg.amp, learn_first)
