"""The run's loaders, as cfg.loader says, and a fastnet's whitening sample, from its TrainingData."""
from __future__ import annotations

import os
from typing import Iterable

import mxnet as mx
import numpy as np

from ..config import Config
from ..data.augment import make_augment
from ..data.batches import DecodedEvalLoader, DecodedTrainLoader, decoded_part
from ..data.decoded import decoded_images
from ..data.folder import eval_loader, image_folder, sample_images, train_loader
from ..data.source import TrainingData, cache_dir
from ..data.transforms import eval_transform, train_transform
from ..distributed.cluster import Cluster, worker_batch_size
from ..models import FASTNETS

WHITENING_SAMPLE = 5000  # training images whose 2x2 patches set a fastnet's whitening filters


def make_loaders(cfg: Config, data: TrainingData, cluster: Cluster, ctxs: list[mx.Context], with_valid: bool = True,
                 show_progress: bool = True) -> tuple[Iterable, Iterable | None]:
    """(training loader, validation loader or None) over data.part and its validation part.

    Both kinds give the same images in the same batches for a given seed; the decoded loader
    assembles and augments its batches on the first context. Each worker of a distributed run
    loads its own share of every batch.
    """
    valid_part = data.valid_part if with_valid else None
    batch_size = worker_batch_size(cfg.batch_size, cluster)
    folder = data.tree.folder
    if cfg.loader == "decoded":
        paths = data.images.paths
        images = decoded_images(paths, cache_dir(cfg), cfg.num_workers, show_progress, data.tree.files_sha256 or None)
        train = DecodedTrainLoader(decoded_part(folder(data.part), images, paths), batch_size, cfg.seed,
                                   make_augment(cfg.augment, cfg.seed), cluster.rank, cluster.num_workers, ctxs[0])
        valid = (DecodedEvalLoader(decoded_part(folder(valid_part), images, paths), cfg.batch_size, ctxs[0])
                 if valid_part else None)
        return train, valid
    source = os.path.join(data.data_dir, "train")
    train = train_loader(image_folder(folder(data.part), train_transform(), source), batch_size, cfg.seed,
                         cfg.num_workers, cluster.rank, cluster.num_workers)
    valid = (eval_loader(image_folder(folder(valid_part), eval_transform(), source), cfg.batch_size,
                         cfg.num_workers) if valid_part else None)
    return train, valid


def whitening_sample(cfg: Config, data: TrainingData, train: Iterable) -> np.ndarray | None:
    """The images a fastnet's whitening filters are computed from (None for other networks): from the training
    loader `train`'s decoded array where it has one (5,000 PNGs read again took 2.2 s before the first step),
    else from the files."""
    if cfg.model not in FASTNETS:
        return None
    if isinstance(train, DecodedTrainLoader):
        return train.spaced_sample(WHITENING_SAMPLE)
    return sample_images(data.tree.folder(data.part), WHITENING_SAMPLE)
