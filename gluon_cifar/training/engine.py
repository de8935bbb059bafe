"""The training loop over any list of contexts (data parallel within one process), and evaluation.

Each batch is split across the contexts with `split_and_load(even_split=False)`; every context
runs forward and backward on its slice; one `Trainer.step(batch_size)` sums the gradients over
contexts (through the kvstore) and divides by the global batch, so the update equals the
single-device update for the same batch.

The loop is one visible function per level: `fit` runs the epochs, `train_one_epoch` the batches.
It writes nothing itself: what happens at sync points and epoch ends (logging, checkpoints) is the
caller's, through `FitHooks`.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd
from mxnet.contrib import amp

from ..contexts import shard
from ..errors import DivergenceError
from .parts import TrainingParts
from .records import EpochProgress, EpochResult
from .schedules import epoch_batches


class FitHooks:
    """What `fit` reports to, between batches it never waits for; override what you need."""

    def progress_bar(self, epoch: int, total_examples: int):
        """A tqdm-like bar (update, set_postfix, close, attribute n) for the epoch, or None."""
        return None

    def on_sync(self, progress: EpochProgress) -> None:
        """Called at every sync point with the epoch's totals so far (e.g. to checkpoint)."""

    def on_epoch_end(self, result: EpochResult) -> None:
        """Called once per finished epoch, validation included."""

    def run_length(self, planned: float) -> float:
        """The run's length in epochs, asked after each on_epoch_end: `planned` (fit's `epochs`, or what
        this said before), or another where a time budget changed it (cut short on a slowed machine,
        lengthened early on a fast one)."""
        return planned


# Batches the Python thread may queue ahead of the devices. MXNet would otherwise let it queue a
# whole sync window (50 batches: all of a cpu-fast epoch) in seconds, and a progress bar counting
# queued batches would run to the end and wait there; waiting on an older batch keeps the
# devices fed and the bar honest, without reading anything back to the host.
RUN_AHEAD = 2


def train_one_epoch(parts: TrainingParts, batches: Iterable, ctxs: list[mx.Context], *, sync_every: int = 50,
                    on_sync: Callable[[EpochProgress], None] | None = None, progress: EpochProgress | None = None,
                    on_step: Callable[[int], None] | None = None) -> tuple[float, float, int]:
    """One pass over `batches`; returns (mean loss, accuracy, examples) of the whole epoch.

    Per-batch loss sums and correct counts stay on the devices; they are read (a blocking
    device->host copy) only after every `sync_every`-th batch of the epoch and at its end. Each
    read checks the losses: a NaN or inf raises DivergenceError naming the batch, before
    `on_sync(progress)` could checkpoint the damaged parameters.

    `progress` carries the totals of an epoch resumed part-way (`batches` must then yield only
    the remaining ones); it is updated in place. Each update runs at parts.learning_rate of its
    step in the run; after it, parts.lookahead (if any) averages, then `on_step(examples)` is told
    the batch's size (e.g. to move a progress bar).
    """
    net, trainer, loss_fn = parts.net, parts.trainer, parts.loss_fn
    progress = progress or EpochProgress()
    steps_before = (progress.epoch - 1) * parts.batches_per_epoch  # updates of the epochs before this one
    window: list[tuple[int, int, list[nd.NDArray], list[nd.NDArray]]] = []  # (size, used, losses, correct)
    start = time.perf_counter()

    def sync() -> None:
        nonlocal start
        _fold_window(window, progress, trainer)
        window.clear()
        progress.seconds += time.perf_counter() - start
        if on_sync is not None:
            on_sync(progress)  # may write a checkpoint: not training time
        start = time.perf_counter()

    for data, label in batches:
        xs, ys = shard(data, ctxs), shard(label.astype("float32"), ctxs)
        with autograd.record():
            outputs = [net(x) for x in xs]
            losses = [loss_fn(out, y) for out, y in zip(outputs, ys)]
            # A last batch smaller than the number of contexts leaves some replicas without a
            # slice. Their gradients must still be fresh zeros, or the kvstore would add last
            # batch's gradients into this update: a zero-weighted pass writes exactly that.
            idle = [loss_fn(net(xs[0].as_in_context(c)), ys[0].as_in_context(c)) * 0 for c in ctxs[len(xs):]]
            if parts.loss_scaling:
                with amp.scale_loss(losses + idle, trainer) as scaled:  # dynamic loss scaling
                    autograd.backward(scaled)
            else:
                autograd.backward(losses + idle)
        batch = progress.batches + len(window) + 1  # 1-based, in the epoch
        if parts.schedule is not None:
            trainer.set_learning_rate(parts.schedule(steps_before + batch))
        trainer.step(data.shape[0] * parts.workers)  # the workers' gradients are summed: divide by all
        if parts.lookahead is not None:
            parts.lookahead(progress.epoch, batch)
        if on_step is not None:
            on_step(data.shape[0])
        window.append((data.shape[0], len(xs), [loss.sum() for loss in losses],
                       [(out.argmax(axis=1) == y).sum() for out, y in zip(outputs, ys)]))
        if len(window) > RUN_AHEAD:
            window[-RUN_AHEAD - 1][2][0].wait_to_read()
        if (progress.batches + len(window)) % sync_every == 0:
            sync()
    if window:
        sync()
    if progress.examples == 0:
        raise ValueError("the training loader yielded no batches")
    return progress.loss_sum / progress.examples, progress.correct / progress.examples, progress.examples


def _fold_window(window: list, progress: EpochProgress, trainer: gluon.Trainer) -> None:
    """Read the window's per-batch sums (one copy per context) into `progress`; stop on NaN/inf."""
    if not window:
        return
    n_ctx = max(used for _, used, _, _ in window)
    loss = np.zeros(len(window))
    correct = np.zeros(len(window))
    for k in range(n_ctx):
        # Context k has an entry for every batch that used it; contexts are used in order.
        batches = [b for b, (_, used, _, _) in enumerate(window) if used > k]
        loss[batches] += nd.stack(*[window[b][2][k] for b in batches]).asnumpy().ravel()
        correct[batches] += nd.stack(*[window[b][3][k] for b in batches]).asnumpy().ravel()
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        batch = progress.batches + int(bad[0]) + 1
        lr = trainer.learning_rate
        raise DivergenceError(
            f"the training loss became {loss[bad[0]]} in epoch {progress.epoch}, batch {batch} (learning rate "
            f"{lr:.4g}): training stopped and no checkpoint was written after it. Lower --lr (e.g. to "
            f"{lr / 10:.4g}) and start again, or --resume the run from its last good checkpoint.")
    for (size, _, _, _), batch_loss, batch_correct in zip(window, loss, correct):
        progress.batches += 1
        progress.examples += size
        progress.loss_sum += float(batch_loss)
        progress.correct += int(round(batch_correct))


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


def fit(parts: TrainingParts, ctxs: list[mx.Context], epochs: float, *, sync_every: int = 50,
        start: EpochProgress | None = None, hooks: FitHooks | None = None) -> None:
    """Train for `epochs` epochs (or hooks.run_length; a fraction stops the last epoch part-way),
    evaluating on parts.valid_data after each (if any); each epoch's EpochResult goes to
    hooks.on_epoch_end (the one history is the caller's).

    `start` resumes part-way: training begins in epoch `start.epoch` with its totals so far, and
    parts.train_data must already be positioned after `start.batches` batches of it.
    """
    hooks = hooks or FitHooks()
    first = start or EpochProgress()
    epoch = first.epoch
    # total_updates decides which epochs have batches (schedules.last_epoch, without the batch count, may count
    # one more for a fraction below an update: 2.0000001 epochs of 4 batches are 8 updates)
    while (batches := epoch_batches(epochs, parts.batches_per_epoch, epoch)) > 0:
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
        hooks.on_epoch_end(result)
        epochs = hooks.run_length(epochs)
        epoch += 1
