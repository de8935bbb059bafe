"""The run directory: everything a run leaves behind, each file written atomically.

    config.json    every setting asked for, the run's plan (what it decided: length, views, recipe), split
                   sizes, class names and library versions
    classes.txt    class names in the network's output order
    metrics.csv    one row per epoch
    model.params   the trained parameters
    curves.png, confusion.csv, confusion.png, per_class.csv: plots.py
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
from typing import Any, Iterator

import pandas as pd

from .. import __version__
from ..atomic import atomic_path, writable_dir, write_text
from ..config import Config
from ..errors import ConfigError, GluonCifarError
from ..provenance import versions
from ..training.records import EpochResult
from ..training.run_plan import RunPlan, read_run
from . import checkpoint, events, plots

CONFIG, CLASSES, METRICS, PARAMS = "config.json", "classes.txt", "metrics.csv", "model.params"
log = logging.getLogger(__name__)

LOCK = ".lock"  # held by the one process writing the run, for as long as it runs


def default_run_dir(root: str = "runs") -> str:
    return os.path.join(root, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def create(path: str) -> bool:
    """Make the run directory (parents too) if needed; return whether it had to be created."""
    return writable_dir(path, "run directory", "choose --out elsewhere")


def has_checkpoint(path: str) -> bool:
    return os.path.exists(os.path.join(path, checkpoint.LAST))


# What a run writes before its first checkpoint (a killed one may leave them): its own, to replace.
EARLY_FILES = {CONFIG, CLASSES, METRICS, plots.CURVES, PARAMS, plots.CONFUSION_CSV, plots.CONFUSION_PNG, plots.PER_CLASS,
               events.FOLDER}
OWN_FILES = EARLY_FILES | {checkpoint.LAST, checkpoint.BEST}  # what no other output may replace


def check_new(path: str) -> None:
    """Refuse a directory holding a run's checkpoint (it would be overwritten), or anything that
    is not ours: a new run starts in an empty directory, or reuses one whose run of ours never
    reached a checkpoint (nothing worth keeping). Call it holding `locked`."""
    if has_checkpoint(path):
        raise GluonCifarError(f"{path} already holds a run: continue it with --resume {path}, or choose "
                              "another --out")
    if os.path.exists(os.path.join(path, PARAMS)):  # trained weights whose checkpoints were removed
        raise GluonCifarError(f"{path} holds a trained run ({PARAMS}) without its checkpoints: nothing there is "
                              "overwritten; choose another --out")
    ours_in_flight = tuple(f".{name}." for name in OWN_FILES)  # atomic_path's temporaries of our own files
    names = sorted(n for n in os.listdir(path)
                   if n != LOCK and not (n.startswith(ours_in_flight) and n.endswith(".tmp")))
    foreign = [n for n in names if n not in EARLY_FILES]
    if names and (foreign or not _written_by_us(os.path.join(path, CONFIG))):
        listed = ", ".join((foreign or names)[:5]) + (" ..." if len(foreign or names) > 5 else "")
        raise GluonCifarError(f"{path} is not empty and is not a run directory of gluon_cifar (it holds {listed}): "
                              "nothing there is overwritten; choose a new or empty --out")


def holds_run(path: str) -> bool:
    """Whether folder `path` is a run directory: a checkpoint, or a config.json of ours."""
    return has_checkpoint(path) or _written_by_us(os.path.join(path, CONFIG))


def _written_by_us(config_path: str) -> bool:
    """Whether `config_path` is a run's config.json (its settings, class names and versions)."""
    try:
        with open(config_path, encoding="utf-8") as f:
            saved = json.load(f)
        return isinstance(saved, dict) and {"config", "classes", "versions"} <= saved.keys()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the run directory `path` for this process: a second run on it stops at once, named.

    An advisory lock (flock) on RUN/.lock: the kernel releases it when the process ends, however
    it ends, so a killed run never leaves a stale lock behind. The file is removed on release;
    a process that locked a file removed meanwhile sees another inode at the path and tries again.
    """
    lock_path = os.path.join(path, LOCK)
    while True:
        handle = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise GluonCifarError(f"{path} is in use by a run that is still going ({holder}): wait for it to end, "
                                  "or choose another --out") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        handle.close()  # we locked a file its owner removed on release: lock the current one
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock_path)
        handle.close()


def discard(path: str) -> None:
    """Remove what a run that never reached a checkpoint wrote, so no half-run is left behind."""
    for name in (CONFIG, CLASSES, METRICS, PARAMS):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, name))
    events.discard(path)


def remove_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)  # only if empty: never delete what the user put there


def save_start(path: str, cfg: Config, plan: RunPlan, classes: list[str], info: dict[str, Any]) -> None:
    """config.json (the settings asked for, the plan and `info`) and classes.txt of a run starting."""
    cfg.save(os.path.join(path, CONFIG), {"plan": plan.as_record(), "classes": classes, "versions": versions(),
                                          **info})
    write_text(os.path.join(path, CLASSES), "\n".join(classes) + "\n")


def save_plan(path: str, plan: RunPlan) -> None:
    """Rewrite config.json with `plan` in place of the one it holds."""
    save_record(path, {"plan": plan.as_record()})


def save_record(path: str, added: dict[str, Any]) -> None:
    """Rewrite config.json with `added` to (or replacing in) what it holds."""
    with open(os.path.join(path, CONFIG), encoding="utf-8") as f:
        saved = json.load(f)
    write_text(os.path.join(path, CONFIG), json.dumps({**saved, **added}, indent=2) + "\n")


def save_metrics(path: str, history: list[EpochResult]) -> None:
    with atomic_path(os.path.join(path, METRICS)) as tmp:
        pd.DataFrame([h.as_row() for h in history]).to_csv(tmp, index=False)


def save_params(path: str, net) -> str:
    target = os.path.join(path, PARAMS)
    with atomic_path(target) as tmp:
        net.save_parameters(tmp)
    return target


def trained_params(path: str, retrain_flag: bool = False) -> str:
    """The run's parameters file (a warning if the run is still training: its last finished epoch's); errors say
    why it is missing and what to do (`retrain_flag`: the command has --retrain, which needs none)."""
    params = os.path.join(path, PARAMS)
    retrain = ", or pass --retrain to train again on every labelled image" if retrain_flag else ""
    if not os.path.isfile(params) and has_checkpoint(path):
        raise ConfigError(f"{params} is missing although run {path} trained (it has {checkpoint.LAST}): it was "
                          f"deleted or moved: put it back{retrain}")
    if not os.path.isfile(params):
        raise ConfigError(f"{params} is missing: run {path} did not finish an epoch; continue it (scripts/train.py "
                          f"--resume {path}){retrain}")
    if still_training(path):
        log.warning("%s is still training: these are the weights of its last finished epoch (%s); use it again "
                    "once it has finished for the final ones", path, _epochs_done(path))
    return params


def still_training(path: str) -> bool:
    """Whether a process holds run directory `path` (`locked`) at this moment."""
    try:
        with open(os.path.join(path, LOCK), encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no lock file: nobody holds it
    return False


def _epochs_done(path: str) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return f"epoch {int(pd.read_csv(os.path.join(path, METRICS))['epoch'].iloc[-1])}"
    return "none recorded"


def info(path: str) -> dict[str, Any]:
    """What config.json records beside the settings and the plan (split sizes, data directory, contexts, ...)."""
    with open(os.path.join(path, CONFIG), encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if k not in ("config", "plan")}


def saved_run(path: str) -> tuple[Config, RunPlan]:
    """The settings asked for and the plan in run file `path` (a config.json); if they do not load, the
    error says which gluon_cifar version wrote it when that is not this one."""
    try:
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist: point to a run directory made by scripts/train.py") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not a gluon_cifar config.json ({exc}); re-run training") from None
        if not isinstance(saved, dict) or "config" not in saved:
            raise ConfigError(f"{path} is not a gluon_cifar config.json (no settings in it); re-run training")
        return read_run(saved, path)
    except ConfigError as exc:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            with open(path, encoding="utf-8") as f:
                written_by = json.load(f).get("versions", {}).get("gluon_cifar")
            if written_by and written_by != __version__:
                raise ConfigError(f"{path} was written by gluon_cifar {written_by}, this is {__version__}: "
                                  f"{exc}") from None
        raise


def load(path: str) -> tuple[Config, list[str]]:
    """The settings a finished run trained with (those asked for, as its plan decided them) and its class names;
    errors say what is missing."""
    if not os.path.isdir(path):
        raise ConfigError(f"run directory {path} does not exist; pass a directory made by scripts/train.py")
    asked, plan = saved_run(os.path.join(path, CONFIG))
    cfg = plan.settings(asked)
    classes_path = os.path.join(path, CLASSES)
    if not os.path.isfile(classes_path):
        raise ConfigError(f"{classes_path} is missing: {path} is not a complete run; re-run training")
    with open(classes_path, encoding="utf-8") as f:
        classes = [line.strip() for line in f if line.strip()]
    return cfg, classes
