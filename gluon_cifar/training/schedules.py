"""Learning-rate schedules: GluonCV's schedulers, each a function of the update count.

The optimizer calls the schedule with its update count (1 for the first batch) and nothing else,
so the rate depends on the step alone: a resumed run gets a fresh schedule and the same rates.
"""
from __future__ import annotations

from gluoncv.utils import LRScheduler, LRSequential

from ..config import Config


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
    """cfg.schedule's schedule: call it with the update count (1-based) for the learning rate."""
    return (step_schedule if cfg.schedule == "step" else warmup_then_decay)(cfg, batches_per_epoch)
