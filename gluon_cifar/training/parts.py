"""Everything a training loop needs, built in one place: network, trainer, loss, averaging, schedule, data.

A run builds its network once (`build_network`) and what trains it (`build_training`). The time
budget's measurement steps that very network and loader; `rewind` then puts the weights back and
a fresh trainer is built, so the run starts exactly where it would have without the measurement.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable

import mxnet as mx
import numpy as np
from mxnet import gluon, nd
from mxnet.contrib import amp

from ..config import Config
from ..distributed.cluster import Cluster, initialize_kvstore
from ..models import build_model
from .averaging import Lookahead
from .optim import make_loss, make_trainer
from .run_plan import RunLength
from .schedules import learning_rate


@dataclass
class TrainingParts:
    net: gluon.Block
    trainer: gluon.Trainer
    loss_fn: gluon.loss.Loss
    train_data: Iterable  # batches of (images, labels); `batch_size` and `start_at` if it has them
    valid_data: Iterable | None = None
    lookahead: Lookahead | None = None  # called after every update
    workers: int = 1  # processes of a distributed run, each stepping on an equal share of the batch
    loss_scaling: bool = False  # float16: amp.init_trainer done, losses scaled dynamically
    # (epochs, parameters): the parameters learn in the first `epochs` epochs only (0: throughout)
    learn_first: tuple[int, tuple[gluon.Parameter, ...]] = (0, ())
    # the learning rate of update k (1-based, over the whole run); None: the trainer's own, constant
    schedule: Callable[[int], float] | None = None
    # the run's length, which `schedule` and `lookahead` read and `fit` trains (run_plan.RunLength, its one
    # owner); None for parts that only step (a budget's probe, a benchmark)
    length: RunLength | None = None
    # each context's slice of a batch goes through in this many pieces, their gradients summed (engine.train_step)
    pieces: int = 1

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

    def learns(self, params: Iterable[gluon.Parameter]) -> None:
        """Let `params` learn again (as a run starts: a budget's probe timed them frozen)."""
        for param in params:
            param.grad_req = "write"

    def learning_rate(self, step: int) -> float:
        """The rate of update `step` (1-based), as `schedule` says (the trainer's own without one)."""
        return self.trainer.learning_rate if self.schedule is None else self.schedule(step)


def build_network(cfg: Config, ctxs: list[mx.Context], n_classes: int, sample: np.ndarray | None) -> gluon.Block:
    """cfg.model initialised from cfg.seed (`sample`: a fastnet's whitening images), hybridized if asked."""
    net = build_model(cfg.model, n_classes, ctxs, seed=cfg.seed, sample=sample)
    hybridize(net, cfg)
    return net


def hybridize(net: gluon.Block, cfg: Config) -> None:
    """Compile `net` into a static graph if cfg says so; again, to drop the graph compiled so far and the
    activation buffers static_alloc keeps with it (the next step compiles the same graph anew)."""
    if cfg.hybridize:
        net.hybridize(static_alloc=True)


def build_training(cfg: Config, ctxs: list[mx.Context], cluster: Cluster, net: gluon.Block, train_data: Iterable,
                   valid_data: Iterable | None = None, precision: str = "float32",
                   length: RunLength | None = None) -> TrainingParts:
    """What trains `net` as cfg says (the settings a RunPlan decided), ready for the first step on every context
    and worker, for a run `length` long (default: cfg.epochs, never changed)."""
    length = length or RunLength(cfg.epochs)
    # Lookahead rewrites the weights between steps: they must be the ones the optimizer updates,
    # not a kvstore's copy (which MXNet keeps for several local contexts unless told not to).
    update_on_kvstore = False if cfg.lookahead_every else cluster.update_on_kvstore
    trainer = make_trainer(net, cfg, cluster.kvstore, update_on_kvstore)
    batches = len(train_data)
    lookahead = Lookahead(net, cfg.lookahead_every, batches, length) if cfg.lookahead_every else None
    if cluster.distributed:
        initialize_kvstore(trainer)
    if precision == "float16":
        amp.init_trainer(trainer)
    learn_first = (cfg.whiten_bias_epochs, (net.whiten.bias,)) if cfg.whiten_bias_epochs else (0, ())
    schedule = functools.partial(learning_rate, cfg, batches_per_epoch=batches, length=length)
    parts = TrainingParts(net, trainer, make_loss(cfg), train_data, valid_data, lookahead, cluster.num_workers,
                          precision == "float16", learn_first, schedule, length, cfg.batch_pieces)
    return parts


def weights(net: gluon.Block) -> list[list[nd.NDArray]]:
    """A copy of every parameter (BatchNorm statistics too) on every context."""
    return [[d.copy() for d in p.list_data()] for p in net.collect_params().values()]


def rewind(net: gluon.Block, saved: list[list[nd.NDArray]]) -> None:
    """Put back the parameters `weights(net)` copied."""
    for param, copies in zip(net.collect_params().values(), saved):
        for data, copy in zip(param.list_data(), copies):
            copy.copyto(data)
    nd.waitall()


def weights_digest(net: gluon.Block) -> str:
    """sha256 of the trainable weights (not BatchNorm statistics: those are per worker by design)."""
    digest = hashlib.sha256()
    for param in net.collect_params().values():
        if param.grad_req != "null":
            digest.update(param.data().asnumpy().tobytes())
    return digest.hexdigest()[:16]
