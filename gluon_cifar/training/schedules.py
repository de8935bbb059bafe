"""The learning rate as a plain function of the update: `learning_rate(cfg, step, batches_per_epoch)`.

The training loop sets it before every update (`TrainingParts.learning_rate`), so it depends on
the step alone: nothing of it is pickled with the optimizer, and a resumed run, or one given more
epochs, gets its rates from this function like a fresh one.

A run's length may be a fraction of epochs (airbench trains 9.9): its last epoch then stops part-way,
after `total_updates` updates in all, and the schedule ends there (`last_epoch`, `epoch_batches`). A time
budget may change the length mid-run (run_plan.RunLength, the length's one owner, records each change):
before a warm-up's decay begins (and for a step decay, whose steps fall on fixed epochs) the new length's own
schedule holds; once the rate falls, the longer (or shorter) schedule would jump up (or down) from it, so the
rate goes on down from where it is to 0 at the new end. No rate the run has used changes.

The formulas are GluonCV's `LRScheduler` ("step", "linear", "cosine") and `LRSequential` (warm-up,
then decay) as evaluated by MXNet's optimizer, which counts updates from 1; tests/test_schedules.py
checks them against GluonCV at every step. Two of GluonCV's habits are kept so that results stay
as they were: each phase of n updates reaches its end value at its (n-1)-th update, and a decay
without warm-up starts at update 1 (so its very first rate is already a step into the decay).
"""
from __future__ import annotations

import dataclasses
import math

from ..config import WARMUP_AUTO, Config
from .run_plan import RunLength


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


def learning_rate(cfg: Config, step: int, batches_per_epoch: int, length: RunLength | None = None) -> float:
    """The learning rate of update `step` (1-based, counted over the whole run) of a run of cfg's schedule whose
    length is `length` (default: cfg.epochs, never changed)."""
    length = length or RunLength(cfg.epochs)
    return _rate(cfg, length.epochs, length.changes, step, batches_per_epoch)


def _rate(cfg: Config, epochs: float, changes: tuple[tuple[int, float], ...], step: int,
          batches_per_epoch: int) -> float:
    if changes:  # a time budget changed the run's length after epoch `after_epoch`
        *earlier, (after_epoch, epochs_before) = changes
        anchor = after_epoch * batches_per_epoch
        if cfg.schedule == "step" or anchor <= cfg.warmup_epochs * batches_per_epoch:
            # the rates so far are the new length's too: its own schedule throughout
            return _rate(cfg, epochs, tuple(earlier), step, batches_per_epoch)
        if step <= anchor:
            return _rate(cfg, epochs_before, tuple(earlier), step, batches_per_epoch)
        return _decay(cfg.schedule, _rate(cfg, epochs_before, tuple(earlier), anchor, batches_per_epoch),
                      step - anchor, total_updates(epochs, batches_per_epoch) - 1 - anchor)
    total = total_updates(epochs, batches_per_epoch)
    if cfg.schedule == "step":
        # lr * lr_decay ** (lr_period epochs completed): decays land on the first update of epochs
        # lr_period + 1, 2 * lr_period + 1, ... (1-based)
        done = min(max(step - 1, 0), total - 1)
        return cfg.lr * cfg.lr_decay ** (done // (cfg.lr_period * batches_per_epoch))
    warmup = cfg.warmup_epochs * batches_per_epoch
    step = min(step, total - 1)
    if step < warmup:  # linear from 0 to lr over the warm-up's updates
        return cfg.lr - cfg.lr * (1 - max(step, 0) / (warmup - 1))
    return _decay(cfg.schedule, cfg.lr, step - warmup, total - warmup - 1)


def _decay(schedule: str, start: float, done: int, length: int) -> float:
    """`done` updates into a decay from `start` to 0 over `length` updates (held at 0 after): half a cosine
    or a straight line."""
    done, length = min(done, length), max(length, 1)
    if schedule == "cosine":
        return start * ((1 + math.cos(math.pi * done / length)) / 2)
    return start * (1 - done / length)  # "linear"


def auto_warmup_epochs(epochs: float) -> int:
    """`--warmup-epochs auto` for a run `epochs` long: a fifth of it in whole epochs (airbench warms up over
    23% of its steps), at least 1; at most 2, the warm-up every run of 8 epochs or more was measured with
    (docs/BENCHMARKS.md: at 5 epochs, 1 scored 0.84 and 0.46 points more than 2, seeds 0 and 1); and always
    fewer than the run's epochs (a 1-epoch run has none: it saved a warm-up of 1 that no command then loaded)."""
    return min(2, max(1, round(epochs / 5)), math.ceil(epochs) - 1)


def with_warmup_decided(cfg: Config) -> Config:
    """cfg with `--warmup-epochs auto` made a number for its epochs (unchanged otherwise): a run decides
    it once its length is known, and saves the number."""
    if cfg.warmup_epochs != WARMUP_AUTO:
        return cfg
    return dataclasses.replace(cfg, warmup_epochs=auto_warmup_epochs(cfg.epochs))
