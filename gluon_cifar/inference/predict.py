"""Predict the test images in streamed batches (from the folder, or straight out of test.7z) and
write submission.csv."""
from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import warnings
from typing import Callable, Iterable, Iterator

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import gluon
from mxnet.contrib import amp

from .. import STARTUP
from ..atomic import atomic_path, check_output_file
from ..contexts import shard
from ..data.archives import Member, decode_member, iter_pngs
from ..data.folder import ImageFiles, eval_loader
from ..data.images import SIZE
from ..data.kaggle import is_test_id
from ..data.transforms import MEAN, STD
from ..errors import LayoutError
from ..precision import COMPUTED_IN_PREDICTION
from .tta import Ensemble, classes_of

log = logging.getLogger(__name__)



def cast_for_inference(net: gluon.HybridBlock, dtype: str, ctxs: list[mx.Context]) -> gluon.HybridBlock:
    """`net` itself for float32; for bfloat16, a copy that computes in bfloat16 (oneDNN, CPU only).

    bfloat16 keeps float32's range with 8 bits of mantissa: faster wherever the CPU computes it,
    at the price of a few changed labels (both measured in docs/BENCHMARKS.md). Inputs and
    outputs stay float32. `dtype` comes from precision.decide, which checked it against `ctxs`.
    """
    if dtype not in COMPUTED_IN_PREDICTION:
        raise ValueError(f"inference computes in {' or '.join(COMPUTED_IN_PREDICTION)}, not {dtype!r}")
    if dtype == "float32":
        return net
    if not STARTUP.bf16_faster:  # forced: --precision auto would have chosen float32 here
        log.warning("%s: float32 (--precision auto here) is exact and at least as fast", (
            "this CPU has no AVX512-BF16/AMX: bfloat16 is emulated and may be slower than float32"
            if not STARTUP.bf16_compute else
            "this CPU computes bfloat16 without AMX: measured no faster than float32 (0.96x, docs/BENCHMARKS.md)"))
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


def predict_files(net: gluon.Block | Ensemble, paths: list[str], ctxs: list[mx.Context], batch_size: int,
                  num_workers: int, on_batch: Callable[[int], None] | None = None,
                  tta: str = "none") -> np.ndarray:
    """Class index for each path, in the order given; `tta`: see tta.predict_classes (an Ensemble
    has each network's own).

    Images are decoded batch by batch (in worker processes if num_workers > 0), so memory stays
    bounded by a few batches however many files there are. Predictions come back in the order of
    the batches' own position labels, never assumed from listing order.
    """
    predictions = np.full(len(paths), -1, dtype=np.int64)
    for data, positions in eval_loader(ImageFiles(paths), batch_size, num_workers):
        classes = classes_of(net, data, ctxs, tta)
        for pred, pos in zip(classes, shard(positions, ctxs)):
            predictions[pos.asnumpy().astype(np.int64)] = pred.asnumpy().astype(np.int64)
        if on_batch is not None:
            on_batch(data.shape[0])
    assert (predictions >= 0).all(), "every test image must have been predicted"
    return predictions


def predict_archive(net: gluon.Block | Ensemble, member: Member, ctxs: list[mx.Context], batch_size: int,
                    num_workers: int, on_bytes: Callable[[int], None] | None = None, tta: str = "none",
                    limit: int | None = None) -> tuple[list[int], np.ndarray]:
    """(ids, class index of each) for every image of test.7z `member` (its first `limit` only, if
    given: to time it), in the archive's order.

    One forward pass through the archive: batches of members are decoded in `num_workers`
    processes (in this one for 0) while earlier ones are predicted, with at most a few batches in
    flight, so memory stays bounded however large the archive. Ids come from member names and
    must be numeric and unique (LayoutError naming the archive otherwise).
    """
    ids: list[int] = []
    predictions: list[np.ndarray] = []
    images = itertools.islice(iter_pngs(member, "test", on_bytes), limit)
    for names, pixels in _decoded_batches(images, batch_size, num_workers, member):
        bad = next((n for n in names if not is_test_id(n)), None)
        if bad is not None:
            raise LayoutError(f"{member.label} holds test/{bad}.png: test ids are numeric (ASCII digits, no leading "
                              "zero, below 2**63); the archive is not the Kaggle one")
        classes = classes_of(net, as_batch(pixels), ctxs, tta)
        predictions.append(np.concatenate([c.asnumpy() for c in classes]).astype(np.int64))
        ids.extend(int(n) for n in names)
    if not ids:
        raise LayoutError(f"{member.label} holds no images: download it again")
    if len(set(ids)) != len(ids):
        twice = [i for i, n in collections.Counter(ids).items() if n > 1]
        raise LayoutError(f"{member.label} holds {len(twice)} ids more than once (first: {twice[:5]}): download it "
                          "again")
    return ids, np.concatenate(predictions)


def _decoded_batches(images: Iterable[tuple[str, bytes]], batch_size: int, num_workers: int,
                     member: Member) -> Iterator[tuple[list[str], np.ndarray]]:
    """(names, (B, H, W, 3) uint8 pixels) per batch of `images`, decoded in worker processes."""
    batches = iter(lambda: list(itertools.islice(images, batch_size)), [])
    if num_workers == 0:
        for batch in batches:
            yield _decode_batch(batch, member)
        return
    # fork, as MXNet's DataLoader does: the workers only run Pillow and numpy
    with multiprocessing.get_context("fork").Pool(num_workers) as pool:
        in_flight: collections.deque = collections.deque()
        for batch in batches:
            in_flight.append(pool.apply_async(_decode_batch, (batch, member)))
            if len(in_flight) > 2 * num_workers:  # bounded: the reader waits for the decoders
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()


def _decode_batch(batch: list[tuple[str, bytes]], member: Member) -> tuple[list[str], np.ndarray]:
    return [name for name, _ in batch], np.stack([decode_member(member, "test", name, data) for name, data in batch])


def as_batch(pixels: np.ndarray) -> mx.nd.NDArray:
    """(B, H, W, 3) uint8 RGB images as the network's input: (B, 3, H, W) float, normalised like
    the training images (data.transforms.eval_transform, for a whole batch at once)."""
    return mx.nd.image.normalize(mx.nd.image.to_tensor(mx.nd.array(pixels, dtype=np.uint8)), MEAN, STD)


def write_submission(path: str, ids: list[int], predictions: np.ndarray, classes: list[str]) -> None:
    """Write `id,label` rows sorted by numeric id, labels as class names; atomically."""
    if len(ids) != len(predictions):
        raise ValueError(f"{len(ids)} ids but {len(predictions)} predictions")
    frame = pd.DataFrame({"id": np.asarray(ids, dtype=np.int64),
                          "label": np.asarray(classes, dtype=object)[predictions]})
    frame = frame.sort_values("id", kind="stable")
    check_output_file(path, "--out", "submission.csv")  # the folder may have gone during the prediction
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
