"""TensorBoard event files of a run, in RUN/tensorboard: watch a long run while it trains with
`tensorboard --logdir runs/`.

Written with tensorboardX (the `tensorboard` extra): it only needs protobuf and numpy, and its
current release runs with the numpy 1.23 and protobuf 3 this package pins, where TensorFlow's
and PyTorch's writers would pull newer ones. Without it a run says once how to get it and trains on.
Event files are append-only logs, not replaced atomically: a killed run leaves its last record
cut short, which TensorBoard reads past.
"""
from __future__ import annotations

import logging
import os
import shutil

log = logging.getLogger(__name__)

FOLDER = "tensorboard"


class EventLog:
    """Scalars of one training: `sync/...` by update (each metrics read), `epoch/...` by epoch."""

    def __init__(self, run: str) -> None:
        from tensorboardX import (
            SummaryWriter,  # an extra: imported only when a run writes events
        )
        self._writer = SummaryWriter(logdir=os.path.join(run, FOLDER), flush_secs=30)

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None:
        for name, value in values.items():
            if value is not None:
                self._writer.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        self._writer.close()


def open_event_log(run: str, wanted: bool) -> EventLog | None:
    """An EventLog for run directory `run` if `wanted` and tensorboardX is installed (else None,
    said once in the log)."""
    if not wanted:
        return None
    try:
        return EventLog(run)
    except ImportError:
        log.info("no TensorBoard events (tensorboardX is not installed: pip install 'gluon_cifar[tensorboard]'; "
                 "--no-tensorboard silences this)")
        return None


def discard(run: str) -> None:
    """Remove the events of a run that never reached a checkpoint (recorder.open_run)."""
    shutil.rmtree(os.path.join(run, FOLDER), ignore_errors=True)
