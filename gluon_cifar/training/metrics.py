"""The running loss and accuracy of a training epoch, kept on the devices between reads (engine.train_one_epoch)."""
from __future__ import annotations

import numpy as np
from mxnet import gluon, nd

from ..errors import DivergenceError
from .records import EpochProgress

# Batches the Python thread may queue ahead of the devices. MXNet would otherwise let it queue a
# whole sync window (50 batches: all of a cpu-fast epoch) in seconds, and a progress bar counting
# queued batches would run to the end and wait there; waiting on an older batch keeps the
# devices fed and the bar honest, without reading anything back to the host.
RUN_AHEAD = 2


class MetricsWindow:
    """The running loss and accuracy of the batches since the last read, on their devices: `add` queues a
    batch's per-context sums; `fold` reads them all at once into the epoch's `progress` and stops on NaN/inf.
    Waits on the batch RUN_AHEAD back as each is added, so that the host never runs far ahead of the devices."""

    def __init__(self, progress: EpochProgress, trainer: gluon.Trainer) -> None:
        self._progress, self._trainer = progress, trainer
        self._batches: list[tuple[int, list[nd.NDArray], list[nd.NDArray]]] = []  # (size, losses, correct)

    def __len__(self) -> int:
        return len(self._batches)

    def add(self, size: int, losses: list[nd.NDArray], correct: list[nd.NDArray]) -> None:
        self._batches.append((size, losses, correct))
        if len(self._batches) > RUN_AHEAD:
            self._batches[-RUN_AHEAD - 1][1][0].wait_to_read()

    def fold(self) -> None:
        """Read the window's per-batch sums (one copy per context) into the epoch's totals; empty it."""
        window, progress = self._batches, self._progress
        if not window:
            return
        n_ctx = max(len(losses) for _, losses, _ in window)
        loss = np.zeros(len(window))
        correct = np.zeros(len(window))
        for k in range(n_ctx):
            # Context k has an entry for every batch that used it; contexts are used in order.
            batches = [b for b, (_, losses, _) in enumerate(window) if len(losses) > k]
            loss[batches] += nd.stack(*[window[b][1][k] for b in batches]).asnumpy().ravel()
            correct[batches] += nd.stack(*[window[b][2][k] for b in batches]).asnumpy().ravel()
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size:
            batch = progress.batches + int(bad[0]) + 1
            lr = self._trainer.learning_rate
            raise DivergenceError(
                f"the training loss became {loss[bad[0]]} in epoch {progress.epoch}, batch {batch} (learning rate "
                f"{lr:.4g}): training stopped and no checkpoint was written after it. Lower --lr (e.g. to "
                f"{lr / 10:.4g}) and start again, or --resume the run from its last good checkpoint.")
        for (size, _, _), batch_loss, batch_correct in zip(window, loss, correct):
            progress.batches += 1
            progress.examples += size
            progress.loss_sum += float(batch_loss)
            progress.correct += int(round(batch_correct))
        window.clear()
