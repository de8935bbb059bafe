"""Predict any images with a finished run: files, folders and glob patterns, any size and format,
top-k classes with their probabilities, as a pandas DataFrame (`gluon_cifar.predict`)."""
from __future__ import annotations

import logging

import mxnet as mx
import numpy as np
import pandas as pd

from .. import STARTUP
from ..data.user_images import find_images, load_image
from ..errors import ConfigError, LayoutError
from ..inference.network import load_network
from ..inference.predict import as_batch, cast_for_inference
from ..inference.tta import predict_probabilities
from ..precision import decide
from ..progress import progress_bar
from ..runs import rundir

log = logging.getLogger(__name__)


def predict(run: str, inputs: list[str] | str, top_k: int = 3, precision: str = "auto", tta: str | None = None,
            ctxs: list[mx.Context] | None = None, batch_size: int = 256, show_progress: bool = False) -> pd.DataFrame:
    """One row per image that `inputs` name (see data.user_images.find_images): `path`, `label`
    and `probability` of the most likely class, then `label_2`, `probability_2`, ... up to `top_k`,
    and `error`: why a file could not be read (it is skipped, its other columns empty).

    With the run's test-time augmentation unless `tta` is given; `precision` as submit.py's.
    """
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    ctxs = ctxs or [mx.cpu()]
    cfg, classes = rundir.load(run)
    if not 1 <= top_k <= len(classes):
        raise ConfigError(f"--top-k must be between 1 and the run's {len(classes)} classes, got {top_k}")
    dtype = decide(precision, [c.device_type for c in ctxs], STARTUP, "predict")
    paths = find_images(inputs)  # every input checked before the network is loaded
    net = cast_for_inference(load_network(cfg, classes, rundir.trained_params(run), ctxs), dtype, ctxs)
    tta = tta or cfg.tta
    rows = []
    with progress_bar(len(paths), "predict", show_progress, unit="img") as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            readable, pixels = [], []
            for path in chunk:
                try:
                    pixels.append(load_image(path))
                    readable.append(path)
                except LayoutError as exc:
                    log.warning("skipped: %s", exc)
                    rows.append({"path": path, "error": str(exc)})
            if pixels:
                shards = predict_probabilities(net, as_batch(np.stack(pixels)), ctxs, tta)
                probabilities = np.concatenate([p.asnumpy() for p in shards]).astype(np.float64)
                rows.extend(_top_k(path, p, classes, top_k) for path, p in zip(readable, probabilities))
            bar.update(len(chunk))
    order = {path: i for i, path in enumerate(paths)}
    columns = ["path", "label", "probability"] + [f"{name}_{k}" for k in range(2, top_k + 1)
                                                  for name in ("label", "probability")] + ["error"]
    return pd.DataFrame(sorted(rows, key=lambda row: order[row["path"]]), columns=columns)


def _top_k(path: str, probabilities: np.ndarray, classes: list[str], k: int) -> dict[str, object]:
    best = np.argsort(-probabilities, kind="stable")[:k]
    row: dict[str, object] = {"path": path, "label": classes[best[0]], "probability": float(probabilities[best[0]])}
    for rank, index in enumerate(best[1:], 2):
        row[f"label_{rank}"], row[f"probability_{rank}"] = classes[index], float(probabilities[index])
    return row
