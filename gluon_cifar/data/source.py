"""Where a run's images come from: the data folder (or the demo data, or a download still in its
archives) resolved once, and the labelled training images opened once per run.

`open_training_data` reads trainLabels.csv, checks the images' headers and builds (or reuses) the
split tree a single time; everything later in the run (the budget's measurement, the loaders, the
whitening sample, the run's record) takes what it needs from the `TrainingData` it returns.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..atomic import writable_dir
from ..config import Config
from ..errors import LayoutError
from .archives import find_download
from .demo import ensure_demo_dataset
from .folder import class_names
from .kaggle import LabelledImages, read_train
from .layout import materialise
from .split import SplitTree, build_split_tree

PARTS = ("train", "train_valid")  # the split tree's folders a run trains on


def default_cache_dir() -> str:
    return os.environ.get("GLUON_CIFAR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gluon_cifar")


def cache_dir(cfg: Config) -> str:
    """The cache directory in force (made if needed), checked writable before any long work."""
    path = cfg.cache_dir or default_cache_dir()
    writable_dir(path, "the cache directory", "point --cache-dir or GLUON_CIFAR_CACHE to a writable place")
    return path


def resolve_data_dir(cfg: Config, show_progress: bool = True) -> str:
    """The configured data directory in the Kaggle layout, or the demo dataset (generated on first use)."""
    return kaggle_layout(cfg.data_dir, cfg, show_progress) if cfg.data_dir else ensure_demo_dataset(cache_dir(cfg))


def kaggle_layout(data_dir: str, cfg: Config, show_progress: bool = True, with_train: bool = True) -> str:
    """`data_dir` itself if extracted; for the competition zip or a folder with train.7z / test.7z,
    the layout made from it once in the cache (layout.materialise: test.7z stays an archive;
    train.7z is extracted only `with_train`)."""
    if not os.path.exists(data_dir):  # (not "<it>/test is missing": it is the download itself that moved)
        raise LayoutError(f"the data {data_dir} does not exist (moved or deleted?): give --data-dir with the Kaggle "
                          "download's place now (cifar-10.zip, or the folder with train.7z and test.7z or train/ and "
                          "test/)")
    download = find_download(data_dir)
    return data_dir if download is None else materialise(download, cache_dir(cfg), show_progress, with_train)


@dataclass(frozen=True)
class TrainingData:
    """The labelled images of one run, read and checked once."""

    data_dir: str  # in the Kaggle layout (extracted from the download if it came as archives)
    images: LabelledImages  # trainLabels.csv against train/, headers checked
    tree: SplitTree  # the linked train / valid / train_valid folders of cfg.seed's split
    part: str  # the folder trained on: "train" (validated on "valid") or "train_valid" (no validation)
    classes: list[str]

    @property
    def valid_part(self) -> str | None:
        return "valid" if self.part == "train" else None

    @property
    def n_train(self) -> int:
        return self.tree.n_train + (0 if self.valid_part else self.tree.n_valid)

    @property
    def n_valid(self) -> int:
        return self.tree.n_valid if self.valid_part else 0


def open_training_data(cfg: Config, part: str | None = None, show_progress: bool = True,
                       data_dir: str | None = None) -> TrainingData:
    """The run's images: `part` of cfg.seed's split (default: "train" with validation, "train_valid"
    with cfg.valid_ratio 0), from `data_dir` (a Kaggle layout) or else cfg's data folder."""
    part = part or ("train" if cfg.valid_ratio else "train_valid")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    data_dir = data_dir or resolve_data_dir(cfg, show_progress)
    images = read_train(data_dir)
    tree = build_split_tree(images, data_dir, cfg.valid_ratio, cfg.seed, cache_dir(cfg))
    return TrainingData(data_dir, images, tree, part, class_names(tree.folder(part)))
