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
from typing import Callable, Iterator, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon.data import Dataset, Sampler
from mxnet.gluon.data.vision import ImageFolderDataset

from ..errors import ConfigError
from .augment import normalize
from .images import read_rgb
from .transforms import eval_transform


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochShuffleSampler(Sampler):
    """Shuffles with (seed, epoch) and yields keys `epoch * n + index` instead of bare indices.

    The key carries the epoch into the worker processes, where `EpochSeededDataset` decodes it.
    Each iteration is the next epoch (0-based); `set_epoch` moves elsewhere, e.g. when resuming,
    and can skip that epoch's first samples once.

    With `num_parts` > 1 (distributed training), this yields part `part` of the shuffled order:
    the parts are disjoint, equal in size (at most num_parts - 1 images sit out each epoch, a
    different few every epoch) and, since every worker shuffles with the same seed, need no
    communication.
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True, part: int = 0, num_parts: int = 1) -> None:
        if not 0 <= part < num_parts:
            raise ValueError(f"part {part} is not in [0, {num_parts})")
        self._length, self._seed, self._shuffle = length, seed, shuffle
        self._part, self._part_length = part, length // num_parts
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self._skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip, self._skip = self._skip, 0
        order = np.arange(self._length)
        if self._shuffle:
            order = np.random.default_rng([self._seed, epoch]).permutation(self._length)
        mine = order[self._part * self._part_length:(self._part + 1) * self._part_length]
        return iter((epoch * self._length + mine[skip:]).tolist())

    def __len__(self) -> int:
        return self._part_length


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


class CheckedImageFolder(ImageFolderDataset):
    """`ImageFolderDataset` whose decode failures name the original file (not its link in the tree)."""

    def __init__(self, root: str, source_dir: str | None = None) -> None:
        super().__init__(root, flag=1)
        self._source_dir = source_dir

    def __getitem__(self, idx: int):
        path, label = self.items[idx]
        shown = os.path.join(self._source_dir, os.path.basename(path)) if self._source_dir else path
        return read_rgb(path, shown), label


def image_folder(root: str, transform: Callable, source_dir: str | None = None) -> Dataset:
    """`ImageFolderDataset` over one folder per class, transforming the image only.

    `source_dir`: where the files linked into `root` really live, named in decode errors.
    """
    return CheckedImageFolder(root, source_dir).transform_first(transform)


def require_one_batch(n_images: int, batch_size: int, num_parts: int) -> None:
    """Training loaders drop partial batches: fewer images than one batch per worker is an error."""
    if n_images // num_parts < batch_size:
        raise ConfigError(f"the training split has {n_images} images, fewer than one batch of "
                          f"{batch_size} per worker: lower --batch-size")


class TrainLoader:
    """Shuffled batches, reproducibly augmented by the dataset's random transform (see module doc).

    Each iteration is one epoch. The last partial batch is dropped, as in the book: a batch of a
    few images gives BatchNorm useless statistics and the update a full-size step on a noisy
    gradient. Shuffling differs every epoch, so no image is left out for long.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int, part: int = 0,
                 num_parts: int = 1) -> None:
        require_one_batch(len(dataset), batch_size, num_parts)
        self._sampler = EpochShuffleSampler(len(dataset), seed, part=part, num_parts=num_parts)
        self.batch_size = batch_size
        batches = gluon.data.BatchSampler(self._sampler, batch_size, last_batch="discard")
        self._loader = gluon.data.DataLoader(EpochSeededDataset(dataset, seed), batch_sampler=batches,
                                             num_workers=num_workers)

    def start_at(self, epoch: int, batch: int = 0) -> None:
        """Make the next iteration epoch `epoch` (1-based), starting after its first `batch` batches."""
        self._sampler.set_epoch(epoch - 1, skip=batch * self.batch_size)

    def __iter__(self):
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self._loader)


def train_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int, part: int = 0,
                 num_parts: int = 1) -> TrainLoader:
    return TrainLoader(dataset, batch_size, seed, num_workers, part, num_parts)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> gluon.data.DataLoader:
    """In-order batches; the last partial batch is kept so that every image is evaluated."""
    return gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep",
                                 num_workers=num_workers)


def class_names(root: str) -> list[str]:
    """The class folders under `root` in the order ImageFolderDataset numbers them (sorted)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


def evenly_spaced(items: Sequence, n: int) -> Sequence:
    """Up to `n` of `items`, evenly spaced over them (a split folder's, in class order: every class is there)."""
    return items[::max(1, len(items) // n)][:n]


def sample_images(folder: str, n: int) -> np.ndarray:
    """Up to `n` images of a split folder, `evenly_spaced` over it, as an (n, 3, H, W) normalised float32
    array: data for a data-dependent initialisation."""
    chosen = evenly_spaced(ImageFolderDataset(folder, flag=1).items, n)
    return normalize(mx.nd.stack(*[read_rgb(path) for path, _ in chosen])).asnumpy()


class ImageFiles(Dataset):
    """Images given by path (e.g. the test set), yielding (transformed image, position)."""

    def __init__(self, paths: list[str], transform: Callable | None = None) -> None:
        self._paths, self._transform = paths, transform or eval_transform()

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int):
        return self._transform(read_rgb(self._paths[index])), index
