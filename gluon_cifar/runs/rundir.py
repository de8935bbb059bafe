"""The run directory: everything a run leaves behind, each file written atomically.

    config.json    every setting, plus seed, split sizes, class names and library versions
    classes.txt    class names in the network's output order
    metrics.csv    one row per epoch
    curves.png     loss and accuracies per epoch
    model.params   the trained parameters
    confusion.csv  validation counts, rows true class, columns predicted class (last epoch)
    confusion.png  the same as an image
    per_class.csv  validation accuracy and image count per class
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import atomic_path, writable_dir, write_text
from ..config import Config
from ..errors import ConfigError, GluonCifarError
from ..provenance import versions
from ..training.records import EpochResult
from . import checkpoint, events

CONFIG, CLASSES, METRICS, CURVES, PARAMS = "config.json", "classes.txt", "metrics.csv", "curves.png", "model.params"
CONFUSION_CSV, CONFUSION_PNG, PER_CLASS = "confusion.csv", "confusion.png", "per_class.csv"
LOCK = ".lock"  # held by the one process writing the run, for as long as it runs


def default_run_dir(root: str = "runs") -> str:
    return os.path.join(root, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def create(path: str) -> bool:
    """Make the run directory (parents too) if needed; return whether it had to be created."""
    return writable_dir(path, "run directory", "choose --out elsewhere")


def has_checkpoint(path: str) -> bool:
    return os.path.exists(os.path.join(path, checkpoint.LAST))


# What a run writes before its first checkpoint (a killed one may leave them): its own, to replace.
EARLY_FILES = {CONFIG, CLASSES, METRICS, CURVES, PARAMS, CONFUSION_CSV, CONFUSION_PNG, PER_CLASS, events.FOLDER}
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


def save_start(path: str, cfg: Config, classes: list[str], info: dict[str, Any]) -> None:
    cfg.save(os.path.join(path, CONFIG), {"classes": classes, "versions": versions(), **info})
    write_text(os.path.join(path, CLASSES), "\n".join(classes) + "\n")


def save_config(path: str, cfg: Config, added: dict[str, Any]) -> None:
    """Rewrite config.json with settings `cfg`, and `added` to (or replacing in) what it records beside them."""
    cfg.save(os.path.join(path, CONFIG), {**info(path), **added})


def save_metrics(path: str, history: list[EpochResult]) -> None:
    with atomic_path(os.path.join(path, METRICS)) as tmp:
        pd.DataFrame([h.as_row() for h in history]).to_csv(tmp, index=False)


def save_curves(path: str, history: list[EpochResult]) -> None:
    plt = _pyplot()
    epochs = [h.epoch for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h.train_loss for h in history], marker="o", label="train loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [h.train_acc for h in history], marker="o", label="train acc")
    if any(h.valid_acc is not None for h in history):
        ax_acc.plot(epochs, [h.valid_acc for h in history], marker="o", label="valid acc")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    _save_figure(plt, fig, os.path.join(path, CURVES))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def _save_figure(plt, fig, target: str) -> None:
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def save_confusion(path: str, confusion: np.ndarray, classes: list[str]) -> None:
    """confusion.csv, per_class.csv and confusion.png from a [true, predicted] count matrix."""
    frame = pd.DataFrame(confusion, index=pd.Index(classes, name="true"), columns=classes)
    with atomic_path(os.path.join(path, CONFUSION_CSV)) as tmp:
        frame.to_csv(tmp)
    totals = confusion.sum(axis=1)
    per_class = pd.DataFrame({"class": classes, "images": totals,
                              "accuracy": np.diag(confusion) / np.maximum(totals, 1)})
    with atomic_path(os.path.join(path, PER_CLASS)) as tmp:
        per_class.to_csv(tmp, index=False)

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > confusion.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    _save_figure(plt, fig, os.path.join(path, CONFUSION_PNG))


def save_params(path: str, net) -> str:
    target = os.path.join(path, PARAMS)
    with atomic_path(target) as tmp:
        net.save_parameters(tmp)
    return target


def trained_params(path: str) -> str:
    """The finished run's parameters file; errors say why it is missing and what to do."""
    params = os.path.join(path, PARAMS)
    if not os.path.isfile(params) and has_checkpoint(path):
        raise ConfigError(f"{params} is missing although run {path} trained (it has {checkpoint.LAST}): it was "
                          "deleted or moved: put it back, or predict with --retrain")
    if not os.path.isfile(params):
        raise ConfigError(f"{params} is missing: run {path} did not finish an epoch; train it or use --retrain")
    return params


def info(path: str) -> dict[str, Any]:
    """What config.json records beside the settings (split sizes, data directory, contexts, ...)."""
    with open(os.path.join(path, CONFIG), encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if k != "config"}


def saved_config(path: str) -> Config:
    """The Config in run file `path` (a config.json); if it does not load, the error says which
    gluon_cifar version wrote it when that is not this one."""
    try:
        return Config.load(path)
    except ConfigError as exc:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            with open(path, encoding="utf-8") as f:
                written_by = json.load(f).get("versions", {}).get("gluon_cifar")
            if written_by and written_by != __version__:
                raise ConfigError(f"{path} was written by gluon_cifar {written_by}, this is {__version__}: "
                                  f"{exc}") from None
        raise


def load(path: str) -> tuple[Config, list[str]]:
    """Config and class names of a finished run; errors say what is missing."""
    if not os.path.isdir(path):
        raise ConfigError(f"run directory {path} does not exist; pass a directory made by scripts/train.py")
    cfg = saved_config(os.path.join(path, CONFIG))
    classes_path = os.path.join(path, CLASSES)
    if not os.path.isfile(classes_path):
        raise ConfigError(f"{classes_path} is missing: {path} is not a complete run; re-run training")
    with open(classes_path, encoding="utf-8") as f:
        classes = [line.strip() for line in f if line.strip()]
    return cfg, classes
