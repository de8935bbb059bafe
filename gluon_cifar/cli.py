"""What the scripts share: logging set-up and turning library errors into exit codes."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Callable

from .errors import GluonCifarError, Interrupted, Terminated

# What each stop signal raises in the scripts, where Python's Ctrl-C raises KeyboardInterrupt.
_STOPS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
REDELIVER_AFTER_S = 0.05  # a finalizer (freeing an NDArray) takes microseconds


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    """Raise the signal's stop. Not inside a finalizer: Python prints an exception raised in `__del__`
    (MXNet frees every NDArray in one) and drops it, and the run would go on as if the signal never came
    (seen in CI: Ctrl-C mid-epoch, then the epoch finished and the script exited 0). There the signal is
    sent again a moment later, to land after the finalizer returns."""
    if _in_finalizer(frame):
        again = threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), signum))
        again.daemon = True  # (a process already on its way out need not wait for it)
        again.start()
        return
    raise _STOPS[signum]()


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _default_stops_in_child() -> None:
    """A forked worker (data loading, decoding) must stop as before: SIGTERM kills it (our handler could only
    run in Python, and a worker blocked in C, on a lock inherited through the fork, would never run it);
    SIGINT raises Python's own KeyboardInterrupt."""
    if signal.getsignal(signal.SIGTERM) is _raise_stop:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is _raise_stop:
        signal.signal(signal.SIGINT, signal.default_int_handler)


os.register_at_fork(after_in_child=_default_stops_in_child)


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main; a GluonCifarError becomes `error: ...` on stderr and its exit code (2),
    Ctrl-C one line and exit code 130 (a script may raise Interrupted to say how to go on)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    previous = {signum: signal.signal(signum, _raise_stop) for signum in _STOPS}
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print("\nterminated" if terminated else "\ninterrupted", file=sys.stderr)
        sys.exit(Terminated.exit_code if terminated else Interrupted.exit_code)
    except Interrupted as exc:
        print(f"\n{'terminated' if exc.exit_code == Terminated.exit_code else 'interrupted'}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except GluonCifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    finally:
        for signum, handler in previous.items():  # run in-process (tests, notebooks): leave them as they were
            signal.signal(signum, handler)
