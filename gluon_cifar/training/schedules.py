"""The learning rate as a plain function of the update: `learning_rate(cfg, step, batches_per_epoch)`.

The training loop sets it before every update (`TrainingParts.learning_rate`), so it depends on
the step alone: nothing of it is pickled with the optimizer, and a resumed run, or one given more
epochs, gets its rates from this function like a fresh one.

A run's length may be a fraction of epochs (airbench trains 9.9): its last epoch then stops part-way,
after `total_updates` updates in all, and the schedule ends there (`last_epoch`, `epoch_batches`).

The formulas are GluonCV's `LRScheduler` ("step", "linear", "cosine") and `LRSequential` (warm-up,
then decay) as evaluated by MXNet's optimizer, which counts updates from 1; tests/test_schedules.py
checks them against GluonCV at every step. Two of GluonCV's habits are kept so that results stay
as they were: each phase of n updates reaches its end value at its (n-1)-th update, and a decay
without warm-up starts at update 1 (so its very first rate is already a step into the decay).
"""
from __future__ import annotations

import math

from ..config import Config


def total_updates(epochs: float, batches_per_epoch: int) -> int:
    """The updates of a run `epochs` long: a fractional last epoch's share of its batches rounded up, as
    airbench counts them (9.9 epochs of 43 batches: 426)."""
    return math.ceil(epochs * batches_per_epoch - 1e-6)  # 1e-6: 9.3 * 43 is 399.90000000000003


def last_epoch(epochs: float) -> int:
    """The 1-based number of the last epoch of a run `epochs` long (9.9: the 10th, part-way)."""
    return math.ceil(epochs - 1e-9)


def epoch_batches(epochs: float, batches_per_epoch: int, epoch: int) -> int:
    """The batches epoch `epoch` (1-based) of a run `epochs` long trains: all but in a fractional last one."""
    return min(batches_per_epoch, total_updates(epochs, batches_per_epoch) - (epoch - 1) * batches_per_epoch)


def learning_rate(cfg: Config, step: int, batches_per_epoch: int) -> float:
    """The learning rate of update `step` (1-based, counted over the whole run)."""
    total = total_updates(cfg.epochs, batches_per_epoch)
    if cfg.schedule == "step":
        # lr * lr_decay ** (lr_period epochs completed): decays land on the first update of epochs
        # lr_period + 1, 2 * lr_period + 1, ... (1-based)
        done = min(max(step - 1, 0), total - 1)
        return cfg.lr * cfg.lr_decay ** (done // (cfg.lr_period * batches_per_epoch))
    warmup = cfg.warmup_epochs * batches_per_epoch
    step = min(step, total - 1)
    if step < warmup:  # linear from 0 to lr over the warm-up's updates
        return cfg.lr - cfg.lr * (1 - max(step, 0) / (warmup - 1))
    decayed, last = step - warmup, max(total - warmup - 1, 1)  # the decay's updates so far, and its last
    if cfg.schedule == "cosine":
        return cfg.lr * ((1 + math.cos(math.pi * decayed / last)) / 2)  # half a cosine, from lr to 0
    return cfg.lr * (1 - decayed / last)  # "linear": a straight line from lr to 0


def lengthens_smoothly(cfg: Config, done_epochs: float) -> bool:
    """Whether a run of `cfg` that has trained `done_epochs` epochs can be given more without its learning
    rate jumping: every rate it has used is the longer run's too, and it goes on down the longer run's
    decay. True for a step decay (its steps fall on fixed epochs), and for a warm-up followed by a decay
    until the decay begins (after that, the longer decay would go on from a higher rate)."""
    return cfg.schedule == "step" or done_epochs <= cfg.warmup_epochs
