"""What the scripts share: logging set-up and turning library errors into exit codes."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import GluonCifarError


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main; a GluonCifarError becomes `error: ...` on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        sys.exit(main() or 0)
    except GluonCifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
