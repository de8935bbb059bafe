"""The command lines: `gluon-cifar train|submit|export|launch` (and `scripts/*.py`, the same).

Each module here parses its flags and calls the library; nothing else. `run` is the console
entry point (setup.cfg) and `python -m gluon_cifar`.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {"train": "train a network into a run directory",
            "submit": "write submission.csv from a run",
            "predict": "predict your own images (files, folders, globs) with a run",
            "export": "export a run's network (MXNet symbol or ONNX), checked on real images",
            "launch": "run a training command as a parameter-server job (several processes or machines)"}


def run(argv: list[str] | None = None, prog: str | None = None) -> None:
    """`gluon-cifar COMMAND [flags]` (`prog`: the name its usage shows, scripts/COMMAND.py's own): run one
    command's main under cli.run_main (exit codes). The command's module is imported there too: its imports
    (GluonCV, pandas, ...) take seconds, and a Ctrl-C in them is an interruption like any other, not a
    traceback."""
    from ..cli import run_main

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        listed = "\n".join(f"  {name:8} {what}" for name, what in COMMANDS.items())
        print(f"usage: gluon-cifar COMMAND [flags]; COMMAND --help for its flags\n\ncommands:\n{listed}",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    run_main(lambda: importlib.import_module(f"{__name__}.{argv[0]}").main(argv[1:],
                                                                         prog=prog or f"gluon-cifar {argv[0]}"))
