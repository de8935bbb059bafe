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
from gluoncv.utils import LRScheduler, LRSequential
from mxnet import autograd, gluon, nd
from mxnet.contrib import amp

from ..config import Config
from ..errors import ConfigError, DivergenceError


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


def warmup_then_decay(cfg: Config, batches_per_epoch: int) -> LRScheduler | LRSequential:
    """Linear warm-up from 0 to lr over warmup_epochs, then a decay to 0 at the last update: a half
    cosine (schedule "cosine") or a straight line ("linear")."""
    decay = LRScheduler(cfg.schedule, base_lr=cfg.lr, target_lr=0.0, nepochs=cfg.epochs - cfg.warmup_epochs,
                        iters_per_epoch=batches_per_epoch)
    if not cfg.warmup_epochs:
        return decay
    warmup = LRScheduler("linear", base_lr=0.0, target_lr=cfg.lr, nepochs=cfg.warmup_epochs,
                         iters_per_epoch=batches_per_epoch)
    return LRSequential([warmup, decay])


def lr_schedule(cfg: Config, batches_per_epoch: int) -> LRScheduler | LRSequential:
    return (step_schedule if cfg.schedule == "step" else warmup_then_decay)(cfg, batches_per_epoch)


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


def shard(batch: nd.NDArray, ctxs: list[mx.Context]) -> list[nd.NDArray]:
    """Split along axis 0 over as many contexts as the batch has samples for (uneven is fine)."""
    used = ctxs[:min(len(ctxs), batch.shape[0])]
    return gluon.utils.split_and_load(batch, used, even_split=False)


# Batches the Python thread may queue ahead of the devices. MXNet would otherwise let it queue a
# whole sync window (50 batches: all of a cpu-fast epoch) in seconds, and a progress bar counting
# queued batches would run to the end and wait there; waiting on an older batch keeps the
# devices fed and the bar honest, without reading anything back to the host.
RUN_AHEAD = 2


@dataclass
class EpochProgress:
    """Host-side totals of the epoch in progress: what a mid-epoch checkpoint must carry over."""

    epoch: int = 1  # 1-based
    batches: int = 0
    examples: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0  # training time spent in this epoch so far, across resumes


def train_one_epoch(net: gluon.Block, loader: Iterable, loss_fn: gluon.loss.Loss, trainer: gluon.Trainer,
                    ctxs: list[mx.Context], sync_every: int = 50,
                    on_sync: Callable[[EpochProgress], None] | None = None,
                    progress: EpochProgress | None = None, workers: int = 1,
                    amp_enabled: bool = False,
                    after_step: Callable[[int, int], None] | None = None) -> tuple[float, float, int]:
    """One pass over `loader`; returns (mean loss, accuracy, examples) of the whole epoch.

    Per-batch loss sums and correct counts stay on the devices; they are read (a blocking
    device->host copy) only after every `sync_every`-th batch of the epoch and at its end. Each
    read checks the losses: a NaN or inf raises DivergenceError naming the batch, before
    `on_sync(progress)` could checkpoint the damaged parameters. The reads also keep the Python
    thread from queueing an unbounded number of batches ahead of the devices.

    `progress` carries the totals of an epoch resumed part-way (the loader must then yield only
    the remaining batches); it is updated in place. `workers`: processes of a distributed run,
    each stepping on an equal batch; their gradients are summed, so the step divides by all.
    `amp_enabled`: float16 loss scaling (`enable_mixed_precision` and `amp.init_trainer` were called). `after_step(epoch, batch)`
    runs after every update (batch: 1-based within the epoch), e.g. averaging.Lookahead.
    """
    progress = progress or EpochProgress()
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

    for data, label in loader:
        xs, ys = shard(data, ctxs), shard(label.astype("float32"), ctxs)
        with autograd.record():
            outputs = [net(x) for x in xs]
            losses = [loss_fn(out, y) for out, y in zip(outputs, ys)]
            # A last batch smaller than the number of contexts leaves some replicas without a
            # slice. Their gradients must still be fresh zeros, or the kvstore would add last
            # batch's gradients into this update: a zero-weighted pass writes exactly that.
            idle = [loss_fn(net(xs[0].as_in_context(c)), ys[0].as_in_context(c)) * 0 for c in ctxs[len(xs):]]
            if amp_enabled:
                with amp.scale_loss(losses + idle, trainer) as scaled:  # dynamic loss scaling
                    autograd.backward(scaled)
            else:
                autograd.backward(losses + idle)
        trainer.step(data.shape[0] * workers)
        if after_step is not None:
            after_step(progress.epoch, progress.batches + len(window) + 1)
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


def predict_classes(net: gluon.Block, data: nd.NDArray, ctxs: list[mx.Context], tta: str = "none") -> list[nd.NDArray]:
    """Class indices (float, per shard, on their contexts) for one batch; no host sync.

    `tta` (test-time augmentation): "flip" averages the probabilities of each image and its mirror;
    "flip-shift" also those of the image shifted one pixel up-left and one down-right (borders
    reflected) and their mirrors: 6 views, weighted 1/4 for the unshifted pair and 1/8 for the rest.
    """
    return [_tta_probabilities(net, x, tta).argmax(axis=1) for x in shard(data, ctxs)]


def _tta_probabilities(net: gluon.Block, x: nd.NDArray, tta: str) -> nd.NDArray:
    if tta == "none":
        return net(x)  # the argmax is the same without the softmax

    def both_ways(view: nd.NDArray) -> nd.NDArray:
        return nd.softmax(net(view)) + nd.softmax(net(nd.flip(view, axis=3)))

    if tta == "flip":
        return both_ways(x)
    if tta != "flip-shift":
        raise ValueError(f"unknown test-time augmentation {tta!r}: none, flip or flip-shift")
    height, width = x.shape[2:]
    padded = nd.pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 1, 1))
    down_right = padded[:, :, 0:height, 0:width]
    up_left = padded[:, :, 2:height + 2, 2:width + 2]
    return 2 * both_ways(x) + both_ways(down_right) + both_ways(up_left)


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
        progress: Callable[[int], object] | None = None,
        on_sync: Callable[[EpochProgress], None] | None = None,
        start: EpochProgress | None = None, workers: int = 1, amp_enabled: bool = False,
        loss_fn: gluon.loss.Loss | None = None,
        after_step: Callable[[int, int], None] | None = None) -> list[EpochResult]:
    """Train up to epoch `epochs`, evaluating after each; returns one EpochResult per epoch trained.

    `progress(epoch)` may return a tqdm-like bar (update/set_postfix/close) for the epoch.
    `start` resumes part-way: training begins in epoch `start.epoch` with its totals so far, and
    `train_data` must already be positioned after `start.batches` batches of it. `loss_fn`:
    softmax cross-entropy unless given (make_loss). `after_step`: see train_one_epoch.
    """
    loss_fn = loss_fn or gluon.loss.SoftmaxCrossEntropyLoss()
    history: list[EpochResult] = []
    first = start or EpochProgress()
    for epoch in range(first.epoch, epochs + 1):
        state = first if epoch == first.epoch else EpochProgress(epoch)
        lr = trainer.optimizer.lr_scheduler(trainer.optimizer.num_update + 1 - state.batches)
        bar = progress(epoch) if progress else None
        if bar is not None:
            bar.update(state.examples)
        batch_size = getattr(train_data, "batch_size", 0)

        def stepped(epoch: int, batch: int) -> None:
            if after_step is not None:
                after_step(epoch, batch)
            if bar is not None:
                bar.update(batch_size)  # moves every batch; made exact at the next sync

        def report(now: EpochProgress) -> None:
            if bar is not None:
                bar.n = now.examples
                bar.set_postfix(loss=f"{now.loss_sum / now.examples:.3f}", acc=f"{now.correct / now.examples:.3f}")
            if on_sync is not None:
                on_sync(now)

        train_loss, train_acc, examples = train_one_epoch(net, train_data, loss_fn, trainer, ctxs, sync_every,
                                                          report, state, workers, amp_enabled, stepped)
        if bar is not None:
            bar.close()
        confusion = confusion_matrix(net, valid_data, ctxs) if valid_data is not None else None
        valid_acc = accuracy(confusion) if confusion is not None else None
        result = EpochResult(epoch, lr, train_loss, train_acc, valid_acc, examples, state.seconds,
                             examples / state.seconds, confusion)
        history.append(result)
        if on_epoch_end is not None:
            on_epoch_end(result)
    return history
