"""Predict the test folder in streamed batches and write submission.csv."""
from __future__ import annotations

import logging
import os
import warnings
from typing import Callable

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import gluon
from mxnet.contrib import amp

from .. import STARTUP
from ..atomic import atomic_path
from ..data.folder import ImageFiles, eval_loader
from ..data.images import SIZE
from ..errors import ConfigError, GluonCifarError
from ..contexts import shard
from .tta import predict_classes

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")


def cast_for_inference(net: gluon.HybridBlock, dtype: str, ctxs: list[mx.Context]) -> gluon.HybridBlock:
    """`net` itself for float32; for bfloat16, a copy that computes in bfloat16 (oneDNN, CPU only).

    bfloat16 keeps float32's range with 8 bits of mantissa: faster wherever the CPU computes it,
    at the price of a few changed labels (both measured in docs/BENCHMARKS.md). Inputs and
    outputs stay float32.
    """
    check_dtype(dtype, ctxs)
    if dtype == "float32":
        return net
    if not STARTUP.bf16_compute:
        log.warning("this CPU has no AVX512-BF16/AMX: bfloat16 is emulated and may be slower than float32")
    # The conversion rewrites the graph of a hybridized forward pass (even for a run trained
    # with --no-hybridize: inference computes the same either way).
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros((1, 3, SIZE[1], SIZE[0]), ctx=ctxs[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot decide type")  # of the input: float32, cast inside
        low = amp.convert_hybrid_block(net, target_dtype="bfloat16", ctx=ctxs[0])
    low.collect_params().reset_ctx(ctxs)
    low.hybridize(static_alloc=True)
    return low


def check_dtype(dtype: str, ctxs: list[mx.Context]) -> None:
    """Raise ConfigError unless `dtype` can be used for inference on `ctxs` (before any work starts)."""
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "bfloat16" and any(c.device_type != "cpu" for c in ctxs):
        raise ConfigError("--dtype bfloat16 runs on CPU contexts only (MXNet 1.9 has no GPU bfloat16); "
                          "drop --gpus or use --dtype float32")


def predict_files(net: gluon.Block, paths: list[str], ctxs: list[mx.Context], batch_size: int,
                  num_workers: int, on_batch: Callable[[int], None] | None = None,
                  tta: str = "none") -> np.ndarray:
    """Class index for each path, in the order given; `tta`: see engine.predict_classes.

    Images are decoded batch by batch (in worker processes if num_workers > 0), so memory stays
    bounded by a few batches however many files there are. Predictions come back in the order of
    the batches' own position labels, never assumed from listing order.
    """
    predictions = np.full(len(paths), -1, dtype=np.int64)
    for data, positions in eval_loader(ImageFiles(paths), batch_size, num_workers):
        classes = predict_classes(net, data, ctxs, tta)
        for pred, pos in zip(classes, shard(positions, ctxs)):
            predictions[pos.asnumpy().astype(np.int64)] = pred.asnumpy().astype(np.int64)
        if on_batch is not None:
            on_batch(data.shape[0])
    assert (predictions >= 0).all(), "every test image must have been predicted"
    return predictions


def check_writable(path: str) -> None:
    """Fail before hours of prediction, not after, if `path` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise GluonCifarError(f"cannot write {path}: it is a directory; give --out a file name, e.g. "
                              f"{os.path.join(path, 'submission.csv')}")
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
