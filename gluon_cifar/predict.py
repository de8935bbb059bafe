"""Predict the test folder in streamed batches and write submission.csv."""
from __future__ import annotations

import os
from typing import Callable

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import gluon

from .atomic import atomic_path
from .data import ImageFiles, eval_loader
from .engine import predict_classes, shard
from .errors import GluonCifarError


def predict_files(net: gluon.Block, paths: list[str], ctxs: list[mx.Context], batch_size: int,
                  num_workers: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Class index for each path, in the order given.

    Images are decoded batch by batch (in worker processes if num_workers > 0), so memory stays
    bounded by a few batches however many files there are. Predictions come back in the order of
    the batches' own position labels, never assumed from listing order.
    """
    predictions = np.full(len(paths), -1, dtype=np.int64)
    for data, positions in eval_loader(ImageFiles(paths), batch_size, num_workers):
        classes = predict_classes(net, data, ctxs)
        for pred, pos in zip(classes, shard(positions, ctxs)):
            predictions[pos.asnumpy().astype(np.int64)] = pred.asnumpy().astype(np.int64)
        if on_batch is not None:
            on_batch(data.shape[0])
    assert (predictions >= 0).all(), "every test image must have been predicted"
    return predictions


def check_writable(path: str) -> None:
    """Fail before hours of prediction, not after, if `path` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise GluonCifarError(f"cannot write {path}: {directory} is not a writable directory; choose --out elsewhere")


def write_submission(path: str, ids: list[int], predictions: np.ndarray, classes: list[str]) -> None:
    """Write `id,label` rows sorted by numeric id, labels as class names; atomically."""
    if len(ids) != len(predictions):
        raise ValueError(f"{len(ids)} ids but {len(predictions)} predictions")
    frame = pd.DataFrame({"id": np.asarray(ids, dtype=np.int64),
                          "label": np.asarray(classes, dtype=object)[predictions]})
    frame = frame.sort_values("id", kind="stable")
    check_writable(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
