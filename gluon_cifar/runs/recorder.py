"""The one writer of a run directory while it trains: config, metrics, parameters, checkpoints, plots.

`open_run` takes the directory for the run (created, locked, refused if it already holds another
run) and hands back a `RunRecorder`; a run that fails before its first checkpoint leaves nothing
behind. Distributed workers other than rank 0 get a `NullRecorder`: they train, and write nothing.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from mxnet import gluon

from ..config import Config
from ..training.records import EpochProgress, EpochResult
from ..training.run_plan import RunPlan
from . import checkpoint, events, plots, rundir


class NullRecorder:
    """Records nothing: what a distributed worker other than rank 0 writes."""

    path: str | None = None
    best_valid_acc: float | None = None

    def checkpoint(self, net: gluon.Block, trainer: gluon.Trainer, position: EpochProgress,
                   history: list[EpochResult]) -> None:
        pass

    def epoch_end(self, net: gluon.Block, trainer: gluon.Trainer, history: list[EpochResult]) -> None:
        pass

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None:
        pass

    def plan_changed(self) -> None:
        pass

    def finish(self, history: list[EpochResult], peak_memory_mb: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class RunRecorder(NullRecorder):
    """Writes run directory `path` (held by `open_run`), each file atomically."""

    def __init__(self, path: str, cfg: Config, plan: RunPlan, classes: list[str], data_fingerprint: str,
                 best_valid_acc: float | None = None) -> None:
        self.path, self.best_valid_acc = path, best_valid_acc
        self._cfg, self._plan, self._classes, self._fingerprint = cfg, plan, classes, data_fingerprint
        self._events = events.open_event_log(path, cfg.tensorboard)

    def checkpoint(self, net: gluon.Block, trainer: gluon.Trainer, position: EpochProgress,
                   history: list[EpochResult]) -> None:
        """checkpoint-last.zip: the state to continue from `position`."""
        checkpoint.save(self.path, net, trainer, position, [h.as_row() for h in history], self._cfg.to_dict(),
                        self._plan.as_record(), self._fingerprint, self.best_valid_acc)

    def epoch_end(self, net: gluon.Block, trainer: gluon.Trainer, history: list[EpochResult]) -> None:
        """metrics.csv, model.params, the checkpoint after the epoch, and -best.zip if it improved."""
        result = history[-1]
        rundir.save_metrics(self.path, history)
        rundir.save_params(self.path, net)
        improved = result.valid_acc is not None and (self.best_valid_acc is None
                                                     or result.valid_acc > self.best_valid_acc)
        if improved:
            self.best_valid_acc = result.valid_acc
        self.checkpoint(net, trainer, EpochProgress(epoch=result.epoch + 1), history)
        if improved:
            checkpoint.mark_best(self.path)

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None:
        """TensorBoard scalars `group/name` at `step` (events.py), if the run writes events."""
        if self._events is not None:
            self._events.scalars(group, step, values)

    def plan_changed(self) -> None:
        """The run's plan changed (a time budget cut the run short or lengthened it): config.json says so;
        the checkpoints from now on hold it as it is."""
        rundir.save_plan(self.path, self._plan)

    def finish(self, history: list[EpochResult], peak_memory_mb: float | None = None) -> None:
        """curves.png, the last validation's confusion matrix and per-class accuracy, and in config.json the
        training process's peak resident memory."""
        if peak_memory_mb is not None:
            rundir.save_record(self.path, {"peak_memory_mb": round(peak_memory_mb)})
        plots.save_curves(self.path, history)
        if history[-1].confusion is not None:
            plots.save_confusion(self.path, history[-1].confusion, self._classes)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()


@contextlib.contextmanager
def open_run(path: str, cfg: Config, plan: RunPlan, classes: list[str], data_fingerprint: str,
             info: dict[str, Any], *, writes: bool = True,
             resume_from: checkpoint.Checkpoint | None = None) -> Iterator[NullRecorder]:
    """Hold run directory `path` for one training (a new run unless `resume_from`, a checkpoint of it) of
    settings `cfg` (those asked for) as `plan` decided it: config.json (both, with `info` beside them) and
    classes.txt are written first; `plan`, which the run's hooks update, is written again when it changes.

    `writes` False (a distributed worker other than rank 0): a NullRecorder, nothing touched.
    """
    if not writes:
        yield NullRecorder()
        return
    created = rundir.create(path)
    try:
        with rundir.locked(path):
            if resume_from is None:
                rundir.check_new(path)
            checkpoint.remove_temporaries(path)  # safe: no other live process writes here
            best = resume_from.best_valid_acc if resume_from is not None else None
            if resume_from is None:
                events.discard(path)  # the events of a killed run that never reached a checkpoint
            recorder = None
            try:
                rundir.save_start(path, cfg, plan, classes, info)
                recorder = RunRecorder(path, cfg, plan, classes, data_fingerprint, best)
                yield recorder
            except BaseException:
                if recorder is not None:
                    recorder.close()
                if not rundir.has_checkpoint(path):
                    rundir.discard(path)  # a run that never reached a checkpoint leaves no half-run
                raise
            recorder.close()
    finally:
        if created:
            rundir.remove_if_empty(path)
