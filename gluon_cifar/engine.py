"""Training and evaluation over any list of contexts (data parallel within one process).

Each batch is split across the contexts with `split_and_load(even_split=False)`; every context
runs forward and backward on its slice; one `Trainer.step(batch_size)` sums the gradients over
contexts (through the kvstore) and divides by the global batch, so the update equals the
single-device update for the same batch.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import mxnet as mx
import numpy as np
from gluoncv.utils import LRScheduler
from mxnet import autograd, gluon, nd

from .config import Config


@dataclass
class EpochResult:
    epoch: int  # 1-based
    lr: float  # learning rate in force during the epoch
    train_loss: float
    train_acc: float
    valid_acc: float | None
    examples: int
    seconds: float
    examples_per_sec: float
    confusion: np.ndarray | None = field(default=None, repr=False)  # validation [true, predicted]

    def as_row(self) -> dict:
        row = asdict(self)
        del row["confusion"]
        return row


def step_schedule(cfg: Config, batches_per_epoch: int) -> LRScheduler:
    """lr * lr_decay ** (epoch // lr_period), evaluated per update by the optimizer.

    The optimizer calls the scheduler with num_update = 1 for the first batch, so offset=1 makes
    the decay land on the first batch of epochs lr_period, 2 * lr_period, ...
    """
    return LRScheduler("step", base_lr=cfg.lr, nepochs=cfg.epochs, iters_per_epoch=batches_per_epoch,
                       step_epoch=list(range(cfg.lr_period, cfg.epochs, cfg.lr_period)),
                       step_factor=cfg.lr_decay, offset=1)


def make_trainer(net: gluon.Block, cfg: Config, batches_per_epoch: int, kvstore: str = "device") -> gluon.Trainer:
    return gluon.Trainer(net.collect_params(), "sgd",
                         {"learning_rate": cfg.lr, "momentum": cfg.momentum, "wd": cfg.wd,
                          "lr_scheduler": step_schedule(cfg, batches_per_epoch)},
                         kvstore=kvstore)


def shard(batch: nd.NDArray, ctxs: list[mx.Context]) -> list[nd.NDArray]:
    """Split along axis 0 over as many contexts as the batch has samples for (uneven is fine)."""
    used = ctxs[:min(len(ctxs), batch.shape[0])]
    return gluon.utils.split_and_load(batch, used, even_split=False)


def train_one_epoch(net: gluon.Block, loader: Iterable, loss_fn: gluon.loss.Loss, trainer: gluon.Trainer,
                    ctxs: list[mx.Context], sync_every: int = 50,
                    on_progress: Callable[[int, float, float], None] | None = None) -> tuple[float, float, int]:
    """One pass over `loader`; returns (mean loss, accuracy, examples).

    Running sums stay on the devices; they are read (a blocking device->host copy) only every
    `sync_every` batches for `on_progress(examples, loss, acc)`. Those reads also keep the Python
    thread from queueing an unbounded number of batches ahead of the device.
    """
    loss_sums = [nd.zeros(1, ctx=c) for c in ctxs]
    correct = [nd.zeros(1, ctx=c) for c in ctxs]
    examples = 0
    for batch_index, (data, label) in enumerate(loader):
        xs, ys = shard(data, ctxs), shard(label.astype("float32"), ctxs)
        with autograd.record():
            outputs = [net(x) for x in xs]
            losses = [loss_fn(out, y) for out, y in zip(outputs, ys)]
        if len(xs) < len(ctxs):
            # A last batch smaller than the number of contexts leaves some replicas without a
            # slice. Their gradients must still be fresh zeros, or the kvstore would add last
            # batch's gradients into this update: a zero-weighted pass writes exactly that.
            with autograd.record():
                losses += [loss_fn(net(xs[0].as_in_context(c)), ys[0].as_in_context(c)) * 0
                           for c in ctxs[len(xs):]]
        autograd.backward(losses)
        trainer.step(data.shape[0])
        for k, (out, y, loss) in enumerate(zip(outputs, ys, losses)):
            loss_sums[k] += loss.sum()
            correct[k] += (out.argmax(axis=1) == y).sum()
        examples += data.shape[0]
        if on_progress is not None and (batch_index + 1) % sync_every == 0:
            on_progress(examples, _total(loss_sums) / examples, _total(correct) / examples)
    if examples == 0:
        raise ValueError("the training loader yielded no batches")
    return _total(loss_sums) / examples, _total(correct) / examples, examples


def _total(per_context: list[nd.NDArray]) -> float:
    return sum(float(v.asscalar()) for v in per_context)


def predict_classes(net: gluon.Block, data: nd.NDArray, ctxs: list[mx.Context]) -> list[nd.NDArray]:
    """Class indices (float, per shard, on their contexts) for one batch; no host sync."""
    return [net(x).argmax(axis=1) for x in shard(data, ctxs)]


def confusion_matrix(net: gluon.Block, loader: Iterable, ctxs: list[mx.Context]) -> np.ndarray:
    """Counts[true class, predicted class] over every sample of `loader` (partial last batch too).

    Accumulated on each device as one_hot(true)^T @ one_hot(pred), so there is no host sync per
    batch; read once at the end.
    """
    counts: list[nd.NDArray] | None = None
    for data, label in loader:
        for k, (x, y) in enumerate(zip(shard(data, ctxs), shard(label, ctxs))):
            logits = net(x)
            n_classes = logits.shape[1]
            if counts is None:
                counts = [nd.zeros((n_classes, n_classes), ctx=c) for c in ctxs]
            truth = nd.one_hot(y.astype("float32"), n_classes)
            predicted = nd.one_hot(logits.argmax(axis=1), n_classes)
            counts[k] += nd.dot(truth, predicted, transpose_a=True)
    if counts is None:
        raise ValueError("the evaluation loader yielded no batches")
    return np.rint(sum(c.asnumpy() for c in counts)).astype(np.int64)


def accuracy(confusion: np.ndarray) -> float:
    return float(np.trace(confusion) / confusion.sum())


def evaluate(net: gluon.Block, loader: Iterable, ctxs: list[mx.Context]) -> float:
    """Accuracy over every sample of `loader`."""
    return accuracy(confusion_matrix(net, loader, ctxs))


def fit(net: gluon.Block, trainer: gluon.Trainer, train_data: Iterable, valid_data: Iterable | None,
        ctxs: list[mx.Context], epochs: int, sync_every: int = 50,
        on_epoch_end: Callable[[EpochResult], None] | None = None,
        progress: Callable[[int], object] | None = None) -> list[EpochResult]:
    """Train for `epochs`, evaluating after each; returns one EpochResult per epoch.

    `progress(epoch)` may return a tqdm-like bar (update/set_postfix/close) for the epoch.
    """
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    history: list[EpochResult] = []
    for epoch in range(1, epochs + 1):
        lr = trainer.optimizer.lr_scheduler(trainer.optimizer.num_update + 1)
        bar = progress(epoch) if progress else None
        seen = [0]

        def report(examples: int, loss: float, acc: float) -> None:
            if bar is not None:
                bar.update(examples - seen[0])
                seen[0] = examples
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")

        start = time.perf_counter()
        train_loss, train_acc, examples = train_one_epoch(net, train_data, loss_fn, trainer, ctxs,
                                                          sync_every, report)
        seconds = time.perf_counter() - start  # train_one_epoch ends with a host read: work is done
        if bar is not None:
            bar.update(examples - seen[0])
            bar.close()
        confusion = confusion_matrix(net, valid_data, ctxs) if valid_data is not None else None
        valid_acc = accuracy(confusion) if confusion is not None else None
        result = EpochResult(epoch, lr, train_loss, train_acc, valid_acc, examples, seconds, examples / seconds,
                             confusion)
        history.append(result)
        if on_epoch_end is not None:
            on_epoch_end(result)
    return history
