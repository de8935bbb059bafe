"""What a run does between batches: a progress bar, a log line per epoch, the run cut short when the
machine slows down so much that it would miss its time budget (or lengthened when it runs well ahead of
it), and the recorder's writes at the moments they are due."""
from __future__ import annotations

import logging
import math
from typing import Callable, Protocol

from ..config import Config
from ..progress import progress_bar
from .budget import BudgetPlan
from .engine import FitHooks
from .parts import TrainingParts
from .records import EpochProgress, EpochResult
from .replan import Replan
from .replan import replan as replan_after_epoch
from .run_plan import RunPlan
from .timing import Clock, process_clock

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """runs.recorder.RunRecorder's interface (a NullRecorder on workers that write nothing)."""

    def checkpoint(self, net, trainer, position: EpochProgress, history: list[EpochResult]) -> None: ...

    def epoch_end(self, net, trainer, history: list[EpochResult]) -> None: ...

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None: ...

    def plan_changed(self) -> None: ...


class RunHooks(FitHooks):
    """fit's hooks for a run of `cfg` (its plan's settings) as `plan` decided it: `history` holds the finished
    epochs (a resumed run's too: the run's one history), and the checkpoint cadence is decided here alone. With
    a time budget's `budget`, each epoch's pace is held against it (replan.replan): `judge` says when the run
    must be cut short or may be lengthened, by `clock` (default: the process's) and `replan` (tests pass fakes),
    and the decision is recorded in `plan` (the recorder's, which config.json and the checkpoints hold)."""

    def __init__(self, cfg: Config, parts: TrainingParts, recorder: Recorder, history: list[EpochResult],
                 plan: RunPlan, show_progress: bool = True, *, budget: BudgetPlan | None = None,
                 clock: Clock | None = None, replan: Callable[..., Replan] = replan_after_epoch) -> None:
        self._cfg, self._parts, self._recorder, self.history = cfg, parts, recorder, history
        self._plan, self._show_progress = plan, show_progress
        self._budget, self._clock, self._replan = budget, clock or process_clock(), replan
        self._epoch_ended_at: float | None = None  # the wall clock, as the budget counts it
        self._epoch_s: dict[int, float] = {}  # the judged epochs' wall clock: the run's pace (replan.pace)

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

    def judge(self, result: EpochResult) -> Replan | None:
        """With a time budget: the run's length decided again (replan.replan) where the pace of the epoch just
        finished would end it after its budget, or so far ahead of it that more epochs fit; the test-time views
        weighed again where --tta auto chose them. The first epoch is not judged: it carries one-off costs
        (first passes, workers starting) that the plan's measurement leaves out on purpose, and on short
        epochs they would look like a slowdown."""
        if self._budget is None:
            return None
        now, last = self._clock(), self._epoch_ended_at
        self._epoch_ended_at = now
        if last is None:
            return None
        epochs = self._parts.length.epochs
        decided = self._replan(self._budget, epochs, result.epoch, now - last, now, self._plan.tta, self._epoch_s)
        self._epoch_s[result.epoch] = now - last
        if decided.epochs == epochs and not decided.changes_views:
            if decided.uncut_end_s > decided.budget_s:
                log.warning("%s", decided.summary())  # late, with no epoch left to cut
            return None
        (log.warning if decided.epochs < epochs else log.info)("%s", decided.summary())
        return decided

    def on_epoch_end(self, result: EpochResult, decision: Replan | None) -> None:
        """The epoch logged and recorded; a budget's `decision` (fit has applied its length) in the plan,
        before the epoch's checkpoint is written, so that the checkpoint holds the new length."""
        self.history.append(result)
        valid = f", valid acc {result.valid_acc:.4f}" if result.valid_acc is not None else ""
        log.info("epoch %d/%g: lr %.4g, train loss %.4f, train acc %.4f%s, %.1f examples/s, %.0f s",
                 result.epoch, self._parts.length.epochs, result.lr, result.train_loss, result.train_acc, valid,
                 result.examples_per_sec, result.seconds)
        if decision is not None:
            self._plan.tta = decision.tta or self._plan.tta
            self._plan.replans.append(decision.as_record())
            self._recorder.plan_changed()
        self._recorder.scalars("epoch", result.epoch, {
            "train_loss": result.train_loss, "train_acc": result.train_acc, "valid_acc": result.valid_acc,
            "lr": result.lr, "images_per_s": result.examples_per_sec, "seconds": result.seconds})
        self._recorder.epoch_end(self._parts.net, self._parts.trainer, self.history)
