"""Loaders over decoded images (see decoded.py): whole batches sliced from one uint8 array, augmented at once.

They keep the contract of data.TrainLoader and data.eval_loader (same batches of the same images
in the same order for a given seed; `start_at`, `batch_size`, `len`), so the engine does not know
which one it is given. What differs is the cost: no decoding and no per-image Python, so the
loader runs far ahead of any model (benchmarks/bench.py measures it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import mxnet as mx
import numpy as np
from mxnet import nd
from mxnet.gluon.data.vision import ImageFolderDataset

from ..errors import ConfigError
from .augment import normalize, to_context
from .folder import EpochShuffleSampler, evenly_spaced, require_one_batch

# augment((B, H, W, 3) uint8 images, generator, their rows in the decoded array, 0-based epoch, context)
#   -> (B, 3, H, W) normalised float batch on the context
Augment = Callable[[np.ndarray, np.random.Generator, np.ndarray, int, mx.Context], nd.NDArray]


@dataclass(frozen=True)
class DecodedPart:
    """Part of a decoded image array: row `rows[i]` of `images` has class index `labels[i]`."""

    images: np.ndarray  # (N, 32, 32, 3) uint8, usually memory-mapped
    rows: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int32

    def __len__(self) -> int:
        return len(self.rows)


def decoded_part(folder: str, images: np.ndarray, source_paths: list[str]) -> DecodedPart:
    """The images of split-tree folder `folder` (one subfolder per class, linked files), in the
    order and with the class numbers `ImageFolderDataset` gives them, as rows of `images`: the
    decoded array of all `source_paths` (the files the tree links to, named the same)."""
    row_of = {os.path.basename(p): row for row, p in enumerate(source_paths)}
    items = ImageFolderDataset(folder, flag=1).items
    try:
        rows = np.array([row_of[os.path.basename(path)] for path, _ in items], dtype=np.int64)
    except KeyError as exc:
        raise ConfigError(f"{folder} links {exc.args[0]}, which is not among the images being decoded: the split tree "
                          "is stale; delete it and run again") from None
    return DecodedPart(images, rows, np.array([label for _, label in items], dtype=np.int32))


class DecodedTrainLoader:
    """Shuffled, augmented batches of a DecodedPart; each iteration is one epoch.

    The order comes from the same sampler as data.TrainLoader's (so the same images share a batch
    for a given seed, and distributed workers take disjoint parts); the augmentation of batch b
    of epoch e draws from a generator seeded with (seed, epoch, part, b), so a resumed epoch
    continues the very same stream. Batches are assembled on `ctx` (the first device: uint8
    travels, the float work happens there).
    """

    def __init__(self, part: DecodedPart, batch_size: int, seed: int, augment: Augment, worker: int = 0,
                 num_workers: int = 1, ctx: mx.Context | None = None) -> None:
        require_one_batch(len(part), batch_size, num_workers)
        self._part, self._seed, self._augment, self._worker = part, seed, augment, worker
        self._sampler = EpochShuffleSampler(len(part), seed, part=worker, num_parts=num_workers)
        self._first_batch = 0
        self._ctx = ctx or mx.cpu()
        self.batch_size = batch_size

    def start_at(self, epoch: int, batch: int = 0) -> None:
        """Make the next iteration epoch `epoch` (1-based), starting after its first `batch` batches."""
        self._sampler.set_epoch(epoch - 1, skip=batch * self.batch_size)
        self._first_batch = batch

    def __iter__(self) -> Iterator[tuple[nd.NDArray, nd.NDArray]]:
        epoch, first, self._first_batch = self._sampler.epoch, self._first_batch, 0
        keys = np.fromiter(iter(self._sampler), dtype=np.int64)
        indices = keys % len(self._part)
        for b in range(len(indices) // self.batch_size):  # the last partial batch is dropped, as in TrainLoader
            chosen = indices[b * self.batch_size:(b + 1) * self.batch_size]
            rng = np.random.default_rng([self._seed, epoch, self._worker, first + b])
            rows = self._part.rows[chosen]
            data = self._augment(self._part.images[rows], rng, rows, epoch, self._ctx)
            yield data, nd.array(self._part.labels[chosen], ctx=self._ctx, dtype=np.int32)

    def __len__(self) -> int:
        return len(self._sampler) // self.batch_size

    def spaced_sample(self, n: int) -> np.ndarray:
        """Up to `n` of the part's images, `evenly_spaced` over it as folder.sample_images takes them from the
        files (the same images, the same bytes): (n, 3, H, W) normalised float32, on the CPU."""
        rows = evenly_spaced(self._part.rows, n)
        return normalize(to_context(self._part.images[rows], mx.cpu())).asnumpy()


class DecodedEvalLoader:
    """In-order, normalised batches of a DecodedPart; the last partial batch is kept."""

    def __init__(self, part: DecodedPart, batch_size: int, ctx: mx.Context | None = None) -> None:
        self._part, self.batch_size, self._ctx = part, batch_size, ctx or mx.cpu()

    def __iter__(self) -> Iterator[tuple[nd.NDArray, nd.NDArray]]:
        for start in range(0, len(self._part), self.batch_size):
            rows = self._part.rows[start:start + self.batch_size]
            labels = self._part.labels[start:start + self.batch_size]
            yield (normalize(to_context(self._part.images[rows], self._ctx)),
                   nd.array(labels, ctx=self._ctx, dtype=np.int32))

    def __len__(self) -> int:
        return -(-len(self._part) // self.batch_size)
