"""The run directory's pictures and per-class tables: curves.png after every run, and the last validation's
confusion matrix (confusion.csv, confusion.png) and per-class accuracy (per_class.csv). Each file atomically."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..training.records import EpochResult

CURVES = "curves.png"
CONFUSION_CSV, CONFUSION_PNG, PER_CLASS = "confusion.csv", "confusion.png", "per_class.csv"


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
