"""TensorBoard event files of a run, in RUN/tensorboard: watch a long run while it trains with
`tensorboard --logdir runs/`.

Written with tensorboardX (the `tensorboard` extra): it only needs protobuf and numpy, and its
current release runs with the numpy 1.23 and protobuf 3 this package pins, where TensorFlow's
and PyTorch's writers would pull newer ones. Without it a run says once how to get it and trains on.
Event files are append-only logs, not replaced atomically: a killed run leaves its last record
cut short, which TensorBoard reads past.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time

log = logging.getLogger(__name__)

FOLDER = "tensorboard"


class EventLog:
    """Scalars of one training: `sync/...` by update (each metrics read), `epoch/...` by epoch.

    Written and flushed in the training's own thread, at each call (a few records each time), not
    by tensorboardX's SummaryWriter, whose background thread would die with a traceback of its own
    when the disk fills. Events are an aid: if they cannot be written, the run says so once and
    trains on (the checkpoints' own errors are the ones that stop it)."""

    def __init__(self, run: str) -> None:
        from tensorboardX.proto.event_pb2 import Event  # an extra: imported only when a run writes events
        from tensorboardX.record_writer import RecordWriter
        from tensorboardX.summary import scalar

        folder = os.path.join(run, FOLDER)
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}")
        self._event, self._scalar = Event, scalar
        self._records: object | None = RecordWriter(self.path)
        self._write([Event(wall_time=time.time(), file_version="brain.Event:2")])

    def scalars(self, group: str, step: int, values: dict[str, float | None]) -> None:
        now = time.time()
        self._write([self._event(wall_time=now, step=step, summary=self._scalar(f"{group}/{name}", value))
                     for name, value in values.items() if value is not None])

    def _write(self, events: list) -> None:
        if self._records is None:
            return
        try:
            for event in events:
                self._records.write(event.SerializeToString())
            self._records.flush()
        except OSError as exc:
            log.warning("TensorBoard events stop here: cannot write %s (%s)", self.path, exc.strerror or exc)
            self.close()

    def close(self) -> None:
        records, self._records = self._records, None
        if records is not None:
            with contextlib.suppress(OSError):  # already said, or nothing left to say
                records.close()


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
    except OSError as exc:  # RUN/tensorboard not writable, or a file: the run trains on without events
        log.warning("no TensorBoard events: cannot write %s (%s); the run trains on (--no-tensorboard silences "
                    "this)", os.path.join(run, FOLDER), exc.strerror or exc)
        return None


def discard(run: str) -> None:
    """Remove the events of a run that never reached a checkpoint (recorder.open_run)."""
    shutil.rmtree(os.path.join(run, FOLDER), ignore_errors=True)
