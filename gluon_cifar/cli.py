"""What the scripts share: logging set-up and turning library errors into exit codes."""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Callable

from .errors import GluonCifarError, Interrupted, Terminated


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _default_sigterm_in_child() -> None:
    """A forked worker (data loading, decoding) must die of SIGTERM as before: our handler could only
    run in Python, and a worker blocked in C (a lock inherited through the fork) would never run it."""
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_child)


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main; a GluonCifarError becomes `error: ...` on stderr and its exit code (2),
    Ctrl-C one line and exit code 130 (a script may raise Interrupted to say how to go on)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
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
        signal.signal(signal.SIGTERM, previous)  # run in-process (tests, notebooks): leave it as it was
