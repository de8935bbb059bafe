"""What the scripts share: logging set-up and turning library errors into exit codes."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import GluonCifarError, Interrupted


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main; a GluonCifarError becomes `error: ...` on stderr and its exit code (2),
    Ctrl-C one line and exit code 130 (a script may raise Interrupted to say how to go on)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(Interrupted.exit_code)
    except Interrupted as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except GluonCifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
