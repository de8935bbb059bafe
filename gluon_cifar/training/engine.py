"""The training loop over any list of contexts (data parallel within one process), and evaluation.

Each batch is split across the contexts with `split_and_load(even_split=False)`; every context
runs forward and backward on its slice; one `Trainer.step(batch_size)` sums the gradients over
contexts (through the kvstore) and divides by the global batch, so the update equals the
single-device update for the same batch.

The loop is one visible function per level: `fit` runs the epochs, `train_one_epoch` the batches.
It writes nothing itself: what happens at sync points and epoch ends (logging, checkpoints) is the
caller's, through `FitHooks`, whose `judge` returns any change of the run's length for fit to make.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable, Protocol

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd
from mxnet.contrib import amp

from ..contexts import shard
from .metrics import MetricsWindow
from .parts import TrainingParts
from .records import EpochProgress, EpochResult
from .schedules import epoch_batches


class LengthDecision(Protocol):
    """A decision taken after an epoch about the run's length (replan.Replan is one)."""

    epochs: float  # the run's length from now on


class FitHooks:
    """What `fit` reports to, between batches it never waits for; override what you need."""

    def progress_bar(self, epoch: int, total_examples: int):
        """A tqdm-like bar (update, set_postfix, close, attribute n) for the epoch, or None."""
        return None

    def on_sync(self, progress: EpochProgress) -> None:
        """Called at every sync point with the epoch's totals so far (e.g. to checkpoint)."""

    def judge(self, result: EpochResult) -> LengthDecision | None:
        """After each finished epoch: a new length for the run (a time budget's: cut short on a slowed
        machine, lengthened early on a fast one), which fit applies to parts.length; None to keep it."""
        return None

    def on_epoch_end(self, result: EpochResult, decision: LengthDecision | None) -> None:
        """Called once per finished epoch, validation included, after `judge`'s `decision` took effect."""


def train_one_epoch(parts: TrainingParts, batches: Iterable, ctxs: list[mx.Context], *, sync_every: int = 50,
                    on_sync: Callable[[EpochProgress], None] | None = None, progress: EpochProgress | None = None,
                    on_step: Callable[[int], None] | None = None) -> tuple[float, float, int]:
    """One pass over `batches`; returns (mean loss, accuracy, examples) of the whole epoch.

    Per-batch loss sums and correct counts stay on the devices (a MetricsWindow); they are read (a
    blocking device->host copy) only after every `sync_every`-th batch of the epoch and at its end.
    Each read checks the losses: a NaN or inf raises DivergenceError naming the batch, before
    `on_sync(progress)` could checkpoint the damaged parameters.

    `progress` carries the totals of an epoch resumed part-way (`batches` must then yield only
    the remaining ones); it is updated in place. Each update (`train_step`) runs at
    parts.learning_rate of its step in the run; after it, parts.lookahead (if any) averages, then
    `on_step(examples)` is told the batch's size (e.g. to move a progress bar).
    """
    progress = progress or EpochProgress()
    steps_before = (progress.epoch - 1) * parts.batches_per_epoch  # updates of the epochs before this one
    window = MetricsWindow(progress, parts.trainer)
    start = time.perf_counter()

    def sync() -> None:
        nonlocal start
        window.fold()
        progress.seconds += time.perf_counter() - start
        if on_sync is not None:
            on_sync(progress)  # may write a checkpoint: not training time
        start = time.perf_counter()

    for data, label in batches:
        batch = progress.batches + len(window) + 1  # 1-based, in the epoch
        losses, correct = train_step(parts, data, label, ctxs, steps_before + batch)
        if parts.lookahead is not None:
            parts.lookahead(progress.epoch, batch)
        if on_step is not None:
            on_step(data.shape[0])
        window.add(data.shape[0], losses, correct)
        if (progress.batches + len(window)) % sync_every == 0:
            sync()
    if len(window):
        sync()
    if progress.examples == 0:
        raise ValueError("the training loader yielded no batches")
    return progress.loss_sum / progress.examples, progress.correct / progress.examples, progress.examples


def train_step(parts: TrainingParts, data: nd.NDArray, label: nd.NDArray, ctxs: list[mx.Context],
               step: int) -> tuple[list[nd.NDArray], list[nd.NDArray]]:
    """Update `step` of the run (1-based) on one batch, split over `ctxs`: forward and backward on every
    context's slice, then one Trainer.step at the schedule's rate. Returns each context's loss sum and
    count of correct predictions, on its device (nothing is read back here).

    With parts.pieces > 1 each context's slice goes through in that many pieces, one after another, their
    gradients summed: the same update for a fraction of the activations' memory. BatchNorm then normalises
    each piece by its own statistics, as several devices do.
    """
    net, trainer, loss_fn = parts.net, parts.trainer, parts.loss_fn
    xs, ys = shard(data, ctxs), shard(label.astype("float32"), ctxs)
    pieces = [_pieces(x, parts.pieces) for x in xs]
    labels = [_pieces(y, parts.pieces) for y in ys]
    # (one piece: nothing to sum, and no walk over the parameters on every step)
    learning = [param for param in net.collect_params().values() if param.grad_req != "null"] \
        if parts.pieces > 1 else []
    losses, correct = [], []  # per context, summed over its pieces
    for p in range(max(len(c) for c in pieces)):
        used = [k for k in range(len(xs)) if p < len(pieces[k])]
        # Each piece writes its gradients and the earlier pieces' sum is added back here, not by MXNet's
        # grad_req "add": under bfloat16 oneDNN's convolutions lose part of that sum (measured: the gradient
        # of 2 pieces off by more than either piece's; apache/mxnet#16686 is the same kind of loss).
        grads = [param.grad(ctxs[k]) for param in learning for k in used]  # written in place by backward
        earlier = [grad.copy() for grad in grads] if p else []
        with autograd.record():
            outputs = [net(pieces[k][p]) for k in used]
            piece_losses = [loss_fn(out, labels[k][p]) for k, out in zip(used, outputs)]
            # A last batch smaller than the number of contexts leaves some replicas without a
            # slice. Their gradients must still be fresh zeros, or the kvstore would add last
            # batch's gradients into this update: a zero-weighted pass writes exactly that.
            idle = [] if p else [loss_fn(net(xs[0].as_in_context(c)), ys[0].as_in_context(c)) * 0
                                 for c in ctxs[len(xs):]]
            if parts.loss_scaling:
                with amp.scale_loss(piece_losses + idle, trainer) as scaled:  # dynamic loss scaling
                    autograd.backward(scaled)
            else:
                autograd.backward(piece_losses + idle)
        for grad, before in zip(grads, earlier):
            grad += before
        for k, out, loss in zip(used, outputs, piece_losses):
            hits = (out.argmax(axis=1) == labels[k][p]).sum()
            if p == 0:
                losses.append(loss.sum())
                correct.append(hits)
            else:
                losses[k] = losses[k] + loss.sum()
                correct[k] = correct[k] + hits
    if parts.schedule is not None:
        trainer.set_learning_rate(parts.schedule(step))
    trainer.step(data.shape[0] * parts.workers)  # the workers' gradients are summed: divide by all
    return losses, correct


def _pieces(x: nd.NDArray, pieces: int) -> list[nd.NDArray]:
    """`x` split along axis 0 into `pieces` parts (fewer for fewer samples; uneven is fine); [x] for 1."""
    if pieces == 1:
        return [x]
    return gluon.utils.split_data(x, min(pieces, x.shape[0]), even_split=False)


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


def fit(parts: TrainingParts, ctxs: list[mx.Context], *, sync_every: int = 50, start: EpochProgress | None = None,
        hooks: FitHooks | None = None) -> None:
    """Train for parts.length epochs (a fraction stops the last epoch part-way; hooks.judge may change the
    length after any epoch), evaluating on parts.valid_data after each (if any); each epoch's EpochResult goes
    to hooks.on_epoch_end (the one history is the caller's).

    `start` resumes part-way: training begins in epoch `start.epoch` with its totals so far, and
    parts.train_data must already be positioned after `start.batches` batches of it.
    """
    if parts.length is None:
        raise ValueError("fit trains parts.length epochs: build the parts with a RunLength")
    hooks = hooks or FitHooks()
    first = start or EpochProgress()
    epoch = first.epoch
    # total_updates decides which epochs have batches (schedules.last_epoch, without the batch count, may count
    # one more for a fraction below an update: 2.0000001 epochs of 4 batches are 8 updates)
    while (batches := epoch_batches(parts.length.epochs, parts.batches_per_epoch, epoch)) > 0:
        state = first if epoch == first.epoch else EpochProgress(epoch)
        parts.start_epoch(epoch)
        lr = parts.learning_rate((epoch - 1) * parts.batches_per_epoch + 1)  # at the epoch's first update
        stream = (parts.train_data if batches == parts.batches_per_epoch  # else the run's last, part-way
                  else itertools.islice(parts.train_data, max(batches - state.batches, 0)))
        bar = hooks.progress_bar(epoch, batches * getattr(parts.train_data, "batch_size", 0))
        if bar is not None:
            bar.update(state.examples)

        def report(now: EpochProgress, bar=bar) -> None:
            if bar is not None:  # the bar counts batches as they are queued; made exact here
                bar.n = now.examples
                bar.set_postfix(loss=f"{now.loss_sum / now.examples:.3f}", acc=f"{now.correct / now.examples:.3f}")
            hooks.on_sync(now)

        train_loss, train_acc, examples = train_one_epoch(parts, stream, ctxs, sync_every=sync_every,
                                                          on_sync=report, progress=state,
                                                          on_step=bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
        confusion = confusion_matrix(parts.net, parts.valid_data, ctxs) if parts.valid_data is not None else None
        valid_acc = accuracy(confusion) if confusion is not None else None
        result = EpochResult(epoch, lr, train_loss, train_acc, valid_acc, examples, state.seconds,
                             examples / state.seconds, confusion)
        decision = hooks.judge(result)
        if decision is not None and decision.epochs != parts.length.epochs:
            parts.length.change(decision.epochs, epoch)
        hooks.on_epoch_end(result, decision)
        epoch += 1
