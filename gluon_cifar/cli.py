"""What the scripts share: logging set-up and turning library errors into exit codes."""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Callable

from .errors import GluonCifarError, Interrupted, Terminated


def _terminate_in(main_pid: int) -> Callable:
    """A SIGTERM handler raising Terminated in the script's process; forked workers (which inherit
    it) die of the signal as before."""

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated()

    return handler


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main; a GluonCifarError becomes `error: ...` on stderr and its exit code (2),
    Ctrl-C one line and exit code 130 (a script may raise Interrupted to say how to go on)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    previous = signal.signal(signal.SIGTERM, _terminate_in(os.getpid()))
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
