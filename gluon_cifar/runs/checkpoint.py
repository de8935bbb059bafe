"""Checkpoints: everything a run needs to continue exactly where it stopped, one file each.

    RUN/checkpoint-last.zip   after every epoch, and every `checkpoint_every` batches if set
    RUN/checkpoint-best.zip   the epoch with the best validation accuracy so far

Each is a zip of `model.params` (weights and BatchNorm statistics), `trainer.states` (momentum,
update count) and `state.json` (position in the run, the running totals of the epoch in progress,
the metrics so far, the config, the data fingerprint). It is written to a temporary file and
renamed over the old one, so a crash mid-write leaves the previous checkpoint intact.

No random-generator state is stored because none is needed: shuffling is drawn from (seed, epoch)
and augmentation from (seed, epoch, sample index) (see data.py), so the position is enough to
replay the stream. MXNet's own generator, whose state cannot be read back, is not drawn from while
training these networks (they have no dropout).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from mxnet import gluon

from ..atomic import atomic_path, write_errors_named
from ..errors import ConfigError
from ..training.records import EpochProgress

LAST, BEST = "checkpoint-last.zip", "checkpoint-best.zip"
_PARAMS, _STATES, _STATE = "model.params", "trainer.states", "state.json"
FORMAT = 1


@dataclass
class Checkpoint:
    path: str
    progress: EpochProgress  # where to continue: epoch and batches already done in it
    history: list[dict[str, Any]]  # metrics.csv rows of the finished epochs
    config: dict[str, Any]  # the settings asked for (config.json's "config")
    data_fingerprint: str
    best_valid_acc: float | None
    plan: dict[str, Any] | None = None  # what the run decided (config.json's "plan"); None: written before plans

    def saved(self) -> dict[str, Any]:
        """The checkpoint's settings and plan, as config.json holds them (training/run_plan.py, read_run)."""
        return {"config": self.config, **({"plan": self.plan} if self.plan is not None else {})}


def save(run: str, net: gluon.Block, trainer: gluon.Trainer, progress: EpochProgress,
         history: list[dict[str, Any]], config: dict[str, Any], plan: dict[str, Any], data_fingerprint: str,
         best_valid_acc: float | None) -> str:
    """Write RUN/checkpoint-last.zip atomically; `progress` is the position to continue from."""
    state = {"format": FORMAT, "progress": asdict(progress), "history": history, "config": config, "plan": plan,
             "data_fingerprint": data_fingerprint, "best_valid_acc": best_valid_acc}
    target = os.path.join(run, LAST)
    with tempfile.TemporaryDirectory(dir=run, prefix=".checkpoint-") as scratch:
        params, states = os.path.join(scratch, _PARAMS), os.path.join(scratch, _STATES)
        with write_errors_named(target):
            net.save_parameters(params)
            trainer.save_states(states)
        with atomic_path(target) as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # weights barely compress
                archive.write(params, _PARAMS)
                archive.write(states, _STATES)
                archive.writestr(_STATE, json.dumps(state, indent=1))
    return target


def _instead(damaged: str) -> str:
    """What to do about a damaged checkpoint: resume from the best one where it is another file (it is a hard link
    to the last one when the last epoch was the best), else start again."""
    run = os.path.dirname(damaged) or "."
    best = os.path.join(run, BEST)
    if os.path.basename(damaged) == LAST and os.path.isfile(best) and not os.path.samefile(damaged, best):
        return f"Resume from {best} by copying it over {damaged}, or start again"
    return f"No other checkpoint holds the run: start it again (another --out, or delete {run} first)"


def remove_temporaries(run: str) -> None:
    """Delete what a write killed mid-way left behind (a crash can leave no cleanup to the writer)."""
    with os.scandir(run) as entries:
        for entry in entries:
            if entry.name.startswith(".checkpoint-") and entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                os.remove(entry.path)


def mark_best(run: str) -> str:
    """Make RUN/checkpoint-best.zip the current last checkpoint (a hard link when possible)."""
    target = os.path.join(run, BEST)
    with atomic_path(target) as tmp:
        os.remove(tmp)
        try:
            os.link(os.path.join(run, LAST), tmp)  # safe: LAST is always replaced, never rewritten in place
        except OSError:
            shutil.copyfile(os.path.join(run, LAST), tmp)
    return target


def read(path: str) -> Checkpoint:
    """The checkpoint's state (not its weights); a damaged file is a ConfigError naming it."""
    with _open(path) as archive:
        try:
            state = json.loads(archive.read(_STATE))
            return Checkpoint(path, EpochProgress(**state["progress"]), state["history"], state["config"],
                              state["data_fingerprint"], state["best_valid_acc"], state.get("plan"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} holds no valid checkpoint state ({exc}); resume from another "
                              "checkpoint or start the run again") from None


def restore(checkpoint: Checkpoint, net: gluon.Block, trainer: gluon.Trainer, ctxs: list) -> None:
    """Load the checkpoint's weights into `net` and optimizer state into `trainer`."""
    with _open(checkpoint.path) as archive, tempfile.TemporaryDirectory() as scratch:
        archive.extract(_PARAMS, scratch)
        archive.extract(_STATES, scratch)
        try:
            net.load_parameters(os.path.join(scratch, _PARAMS), ctx=ctxs)
        except (AssertionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{checkpoint.path} does not fit this network ({str(exc).splitlines()[0]}); "
                              "it belongs to a different model") from None
        trainer.load_states(os.path.join(scratch, _STATES))
    # Checkpoints of older versions pickled a GluonCV schedule with the optimizer; the training loop
    # sets every update's rate now (training/schedules.py), which MXNet refuses beside a schedule.
    trainer.optimizer.lr_scheduler = None


@contextlib.contextmanager
def _open(path: str) -> Iterator[zipfile.ZipFile]:
    if not os.path.isfile(path):
        raise ConfigError(f"{path} does not exist: {os.path.dirname(path) or '.'} is not a run or stopped before "
                          "its first checkpoint; start it again (the same --out is fine)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # CRC of every member: catches truncation and bit rot
            if damaged is not None or not {_PARAMS, _STATES, _STATE} <= set(archive.namelist()):
                raise zipfile.BadZipFile(f"member {damaged} is damaged" if damaged else "members missing")
            yield archive
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"{path} is damaged ({exc}; truncated by a full disk or a copy?). {_instead(path)}") from None
