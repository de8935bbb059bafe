"""The learning rate as a plain function of the update: `learning_rate(cfg, step, batches_per_epoch)`.

The training loop sets it before every update (`TrainingParts.learning_rate`), so it depends on
the step alone: nothing of it is pickled with the optimizer, and a resumed run, or one given more
epochs, gets its rates from this function like a fresh one.

The formulas are GluonCV's `LRScheduler` ("step", "linear", "cosine") and `LRSequential` (warm-up,
then decay) as evaluated by MXNet's optimizer, which counts updates from 1; tests/test_schedules.py
checks them against GluonCV at every step. Two of GluonCV's habits are kept so that results stay
as they were: each phase of n updates reaches its end value at its (n-1)-th update, and a decay
without warm-up starts at update 1 (so its very first rate is already a step into the decay).
"""
from __future__ import annotations

import math

from ..config import Config


def learning_rate(cfg: Config, step: int, batches_per_epoch: int) -> float:
    """The learning rate of update `step` (1-based, counted over the whole run)."""
    total = cfg.epochs * batches_per_epoch
    if cfg.schedule == "step":
        # lr * lr_decay ** (lr_period epochs completed): decays land on the first update of epochs
        # lr_period + 1, 2 * lr_period + 1, ... (1-based)
        done = min(max(step - 1, 0), total - 1)
        return cfg.lr * cfg.lr_decay ** (done // (cfg.lr_period * batches_per_epoch))
    warmup = cfg.warmup_epochs * batches_per_epoch
    step = min(step, total - 1)
    if step < warmup:  # linear from 0 to lr over the warm-up's updates
        return cfg.lr - cfg.lr * (1 - max(step, 0) / (warmup - 1))
    decayed, last = step - warmup, total - warmup - 1  # the decay's updates so far, and its last
    if cfg.schedule == "cosine":
        return cfg.lr * ((1 + math.cos(math.pi * decayed / last)) / 2)  # half a cosine, from lr to 0
    return cfg.lr * (1 - decayed / last)  # "linear": a straight line from lr to 0


def lengthens_smoothly(cfg: Config, done_epochs: int) -> bool:
    """Whether a run of `cfg` that has trained `done_epochs` epochs can be given more without its learning
    rate jumping: every rate it has used is the longer run's too, and it goes on down the longer run's
    decay. True for a step decay (its steps fall on fixed epochs), and for a warm-up followed by a decay
    until the decay begins (after that, the longer decay would go on from a higher rate)."""
    return cfg.schedule == "step" or done_epochs <= cfg.warmup_epochs
