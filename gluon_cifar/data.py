"""Datasets and DataLoaders, with augmentation that is reproducible whatever the worker count.

MXNet's DataLoader forks its workers once and never reseeds them, so every worker would draw the
same "random" crops and flips. Instead each sample seeds the generators it uses (Python's
`random` for RandomResizedCrop, MXNet's for RandomFlipLeftRight, numpy for good measure) from
(seed, epoch, index): the augmentation stream depends on the seed alone, not on which worker
happened to load the image or on how many workers there are.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Iterator

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon.data import Dataset, Sampler
from mxnet.gluon.data.vision import ImageFolderDataset

from .errors import ConfigError
from .transforms import eval_transform


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochShuffleSampler(Sampler):
    """Shuffles with (seed, epoch) and yields keys `epoch * n + index` instead of bare indices.

    The key carries the epoch into the worker processes, where `EpochSeededDataset` decodes it.
    Each iteration is the next epoch; `set_epoch` moves elsewhere (e.g. when resuming).
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        self._length, self._seed, self._shuffle = length, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = np.arange(self._length)
        if self._shuffle:
            order = np.random.default_rng([self._seed, epoch]).permutation(self._length)
        offset = epoch * self._length
        return iter((offset + order).tolist())

    def __len__(self) -> int:
        return self._length


class EpochSeededDataset(Dataset):
    """Wraps a dataset whose transform is random; reseeds before each sample (see module doc)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self._dataset, self._seed = dataset, seed

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: int):
        epoch, index = divmod(key, len(self._dataset))
        sample_seed = _sample_seed(self._seed, epoch, index)
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        mx.random.seed(sample_seed)
        return self._dataset[index]


def image_folder(root: str, transform: Callable) -> Dataset:
    """`ImageFolderDataset` over one folder per class, transforming the image only."""
    return ImageFolderDataset(root, flag=1).transform_first(transform)


def train_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int) -> gluon.data.DataLoader:
    """Shuffled batches, reproducibly augmented by `dataset`'s random transform (see module doc).

    The last partial batch is dropped, as in the book: a batch of a few images gives BatchNorm
    useless statistics and the update a full-size step on a noisy gradient. Shuffling differs
    every epoch, so no image is left out for long.
    """
    if len(dataset) < batch_size:
        raise ConfigError(f"the training split has {len(dataset)} images, fewer than one batch of "
                          f"{batch_size}: lower --batch-size")
    dataset = EpochSeededDataset(dataset, seed)
    sampler = gluon.data.BatchSampler(EpochShuffleSampler(len(dataset), seed), batch_size, last_batch="discard")
    return gluon.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> gluon.data.DataLoader:
    """In-order batches; the last partial batch is kept so that every image is evaluated."""
    return gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep",
                                 num_workers=num_workers)


def class_names(root: str) -> list[str]:
    """The class folders under `root` in the order ImageFolderDataset numbers them (sorted)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


class ImageFiles(Dataset):
    """Images given by path (e.g. the test set), yielding (transformed image, position)."""

    def __init__(self, paths: list[str], transform: Callable | None = None) -> None:
        self._paths, self._transform = paths, transform or eval_transform()

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int):
        return self._transform(mx.image.imread(self._paths[index], flag=1)), index
