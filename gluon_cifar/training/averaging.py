"""Lookahead weight averaging: every few steps, pull the weights towards a slow running average.

Every `every` updates the average moves towards the current weights, a <- d * a + (1 - d) * w,
and the weights are set to it. The decay d grows over training as max_decay * (t / T) ** 3: the
early steps keep the fast weights (d near 0), the last ones average over many steps, which
smooths the noise of large-learning-rate SGD at the end; the very last update sets the weights to
the average. BatchNorm's running statistics are averaged with the weights they belong to.
(Zhang et al., "Lookahead Optimizer", 2019, with the decay schedule of airbench.)

At every averaging step the weights equal the average, and steps fall on multiples of `every`
within an epoch, on each epoch's last batch and on the run's last update (a fractional last epoch
ends part-way), so a checkpoint taken there holds the whole state: a resumed run calls
`start_from_weights` once the checkpoint is restored.
"""
from __future__ import annotations

from mxnet import gluon, nd

from .run_plan import RunLength
from .schedules import total_updates

MAX_DECAY = 0.95 ** 5


class Lookahead:
    """Call `lookahead(epoch, batch)` after every update (fit's `after_step`); 1-based both."""

    def __init__(self, net: gluon.Block, every: int, batches_per_epoch: int, length: RunLength,
                 max_decay: float = MAX_DECAY) -> None:
        self._params = list(net.collect_params().values())
        self._every, self._batches_per_epoch = every, batches_per_epoch
        self._length = length  # the run's, which the decay grows over (a time budget may change it)
        self._max_decay = max_decay
        self._average: list[list[nd.NDArray]] | None = None  # per parameter, per context

    def decay(self, step: int) -> float:
        """Of the averaging after update `step`: over the run's length as it stood then."""
        total = total_updates(self._length.at(step, self._batches_per_epoch), self._batches_per_epoch)
        return 1.0 if step >= total else self._max_decay * (step / total) ** 3

    def start_from_weights(self) -> None:
        """Make the current weights the average: call after restoring a checkpoint, which holds the
        weights right after an averaging step (so they are the average then)."""
        self._average = [[d.copy() for d in p.list_data()] for p in self._params]

    def __call__(self, epoch: int, batch: int) -> None:
        step = (epoch - 1) * self._batches_per_epoch + batch
        if batch % self._every and batch != self._batches_per_epoch and step < total_updates(
                self._length.epochs, self._batches_per_epoch):
            return
        decay = self.decay(step)
        if self._average is None:  # the first averaging step of a fresh run starts from its weights
            self.start_from_weights()
        for param, averages in zip(self._params, self._average):
            for weight, average in zip(param.list_data(), averages):
                average[:] = decay * average + (1 - decay) * weight
                average.copyto(weight)
