"""What a training run reports and resumes from: one finished epoch, and the epoch in progress.

Plain data (no MXNet), so the run directory and checkpoints can write them without importing the
training loop.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


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


@dataclass
class EpochProgress:
    """Host-side totals of the epoch in progress: what a mid-epoch checkpoint must carry over."""

    epoch: int = 1  # 1-based
    batches: int = 0
    examples: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0  # training time spent in this epoch so far, across resumes
