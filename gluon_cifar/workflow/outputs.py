"""The one guard of every file a command writes (a run directory itself: runs/rundir.check_new), called by
submit, predict and export before any work: never inside a data folder, which is only read; never over a
run's own files, in whatever run directory; and only where a file can really be created."""
from __future__ import annotations

import os
from typing import Iterable

from ..atomic import check_output_file, refuse_inside
from ..errors import ConfigError
from ..runs import rundir


def check_output(path: str, flag: str, example: str, data_dirs: Iterable[str | None] = ()) -> None:
    """Refuse `path` (the value of `flag`) inside any of `data_dirs`, as a run's own file (config.json,
    model.params, a checkpoint, ...) in a folder that holds a run, or where no file can be created
    (`example`: a file name to suggest when `path` is a directory)."""
    for folder in data_dirs:
        if folder:
            refuse_inside(path, folder, flag)  # first: not even a write probe goes there
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(path) in rundir.OWN_FILES and rundir.holds_run(folder):
        raise ConfigError(f"{flag} {path} is one of run {folder}'s own files: choose another name or folder")
    check_output_file(path, flag, example)
