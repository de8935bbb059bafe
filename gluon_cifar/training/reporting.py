"""What a run does between batches: a progress bar, a log line per epoch, a warning when the run
falls behind its time budget, and the recorder's writes at the moments they are due."""
from __future__ import annotations

import logging
import math
from typing import Protocol

from ..config import Config
from ..progress import progress_bar
from . import budget
from .engine import FitHooks
from .parts import TrainingParts
from .records import EpochProgress, EpochResult

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """runs.recorder.RunRecorder's interface (a NullRecorder on workers that write nothing)."""

    def checkpoint(self, net, trainer, position: EpochProgress, history: list[EpochResult]) -> None: ...

    def epoch_end(self, net, trainer, history: list[EpochResult]) -> None: ...

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None: ...


class RunHooks(FitHooks):
    """fit's hooks for a run of `cfg`: `history` holds the finished epochs (a resumed run's too: the
    run's one history), and the checkpoint cadence is decided here alone."""

    def __init__(self, cfg: Config, parts: TrainingParts, recorder: Recorder, history: list[EpochResult],
                 plan: budget.BudgetPlan | None = None, show_progress: bool = True) -> None:
        self._cfg, self._parts, self._recorder, self.history = cfg, parts, recorder, history
        self._plan, self._show_progress = plan, show_progress

    @property
    def sync_every(self) -> int:
        """Batches between fit's syncs: cfg.sync_every, and at least wherever a checkpoint is due
        (a checkpoint needs the metrics read and checked for NaN first)."""
        every = self._cfg.checkpoint_every
        return math.gcd(self._cfg.sync_every, every) if every else self._cfg.sync_every

    def progress_bar(self, epoch: int, total_examples: int):
        return progress_bar(total_examples, f"epoch {epoch}", self._show_progress, unit="img", leave=False)

    def on_sync(self, progress: EpochProgress) -> None:
        step = (progress.epoch - 1) * self._parts.batches_per_epoch + progress.batches  # updates so far
        self._recorder.scalars("sync", step, {
            "train_loss": progress.loss_sum / progress.examples, "train_acc": progress.correct / progress.examples,
            "lr": self._parts.learning_rate(step), "images_per_s": progress.examples / max(progress.seconds, 1e-9)})
        every = self._cfg.checkpoint_every
        if every and progress.batches % every == 0 and progress.batches < self._parts.batches_per_epoch:
            self._recorder.checkpoint(self._parts.net, self._parts.trainer, progress, self.history)

    def on_epoch_end(self, result: EpochResult) -> None:
        self.history.append(result)
        valid = f", valid acc {result.valid_acc:.4f}" if result.valid_acc is not None else ""
        log.info("epoch %d/%d: lr %.4g, train loss %.4f, train acc %.4f%s, %.1f examples/s, %.0f s",
                 result.epoch, self._cfg.epochs, result.lr, result.train_loss, result.train_acc, valid,
                 result.examples_per_sec, result.seconds)
        if self._plan is not None:
            self._warn_if_late(result.epoch)
        self._recorder.scalars("epoch", result.epoch, {
            "train_loss": result.train_loss, "train_acc": result.train_acc, "valid_acc": result.valid_acc,
            "lr": result.lr, "images_per_s": result.examples_per_sec, "seconds": result.seconds})
        self._recorder.epoch_end(self._parts.net, self._parts.trainer, self.history)

    def _warn_if_late(self, epoch: int) -> None:
        pace = sum(h.seconds for h in self.history) / len(self.history)
        late = budget.projected_overrun_s(self._plan, epoch, pace)
        if late > 0:
            log.warning("at this pace (%.0f s an epoch, %.0f planned) training and the submission will end %.1f "
                        "min after the %.0f-minute budget: the machine has slowed down since the start",
                        pace, self._plan.mean_epoch_s, late / 60, self._plan.budget_s / 60)
