"""The book's train/validation split, seeded, materialised as a tree of links.

`ImageFolderDataset` wants one folder per class. The book copies every image (350,000 files)
to get that; we hard-link them (symlinks where hard links are impossible, e.g. across
filesystems), so preparing the tree writes no image bytes and takes seconds.
"""
from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass

import numpy as np

from ..atomic import exclusive
from .images import file_identities
from .kaggle import LabelledImages

log = logging.getLogger(__name__)

TREE_VERSION = 1  # bump when the tree's layout changes, so old trees are rebuilt


def split_train_valid(images: LabelledImages, valid_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices into `images` of the training and validation parts.

    The book's rule: every class gives max(1, floor(n_min * valid_ratio)) images to validation,
    n_min being the smallest class count. Which images is drawn with `seed` (the book takes
    whatever os.listdir returns first). A ratio of 0 holds out nothing.
    """
    by_class: dict[str, list[int]] = collections.defaultdict(list)
    for index, label in enumerate(images.labels):
        by_class[label].append(index)
    n_min = min(len(v) for v in by_class.values())
    n_valid = max(1, math.floor(n_min * valid_ratio)) if valid_ratio > 0 else 0
    rng = np.random.default_rng(seed)
    valid: list[int] = []
    for label in sorted(by_class):  # fixed class order: the draw depends on the seed only
        members = by_class[label]
        valid.extend(members[i] for i in rng.permutation(len(members))[:n_valid])
    valid_set = set(valid)
    train = [i for i in range(len(images.ids)) if i not in valid_set]
    return train, sorted(valid)


@dataclass(frozen=True)
class SplitTree:
    root: str  # holds train/, valid/ and train_valid/, each with one folder per class
    n_train: int
    n_valid: int
    link_kind: str  # "hardlink" or "symlink"
    labels_sha256: str  # of the id,label list: tells whether a run's data changed under it
    files_sha256: str = ""  # images.files_identity of the linked images: tells whether one was replaced
    names_sha256: str = ""  # their names and sizes alone (images.file_identities): the same images, moved

    @property
    def data_fingerprint(self) -> str:
        """What a checkpoint records of its data: the labels, the images' identity, their names and sizes."""
        return f"{self.labels_sha256}:{self.files_sha256}:{self.names_sha256}"

    def folder(self, part: str) -> str:
        return os.path.join(self.root, part)


def _fingerprint(images: LabelledImages, data_dir: str, valid_ratio: float, seed: int) -> dict:
    digest = hashlib.sha256()
    for image_id, label in zip(images.ids, images.labels):
        digest.update(f"{image_id},{label}\n".encode())
    files, names = file_identities(images.paths)
    return {"version": TREE_VERSION, "data_dir": os.path.abspath(data_dir), "valid_ratio": valid_ratio,
            "seed": seed, "labels_sha256": digest.hexdigest(), "files_sha256": files, "names_sha256": names}


def _link(src: str, dst: str, use_symlink: bool) -> bool:
    """Link dst to src; return True if a symlink had to be used."""
    if not use_symlink:
        try:
            os.link(src, dst)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    os.symlink(os.path.abspath(src), dst)
    return True


def build_split_tree(images: LabelledImages, data_dir: str, valid_ratio: float, seed: int,
                     cache_dir: str) -> SplitTree:
    """Return the linked tree for this split, reusing it when the split is unchanged.

    The tree's name depends on the data directory and split settings; its manifest also records
    the labels, so an edited trainLabels.csv triggers a rebuild. It is built in a temporary folder
    and renamed into place, so an interrupted build is never mistaken for a finished one.
    """
    fingerprint = _fingerprint(images, data_dir, valid_ratio, seed)
    key = hashlib.sha256(json.dumps([fingerprint["data_dir"], valid_ratio, seed]).encode()).hexdigest()[:16]
    root = os.path.join(cache_dir, "splits", key)
    with exclusive(f"{root}.lock"):  # workers of a distributed run may all get here at once
        return _reuse_or_build(images, root, fingerprint, valid_ratio, seed)


def _reuse_or_build(images: LabelledImages, root: str, fingerprint: dict, valid_ratio: float, seed: int) -> SplitTree:
    manifest_path = os.path.join(root, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest.get("fingerprint") == fingerprint:
            log.info("reusing split tree %s", root)
            return SplitTree(root, manifest["n_train"], manifest["n_valid"], manifest["link_kind"],
                             fingerprint["labels_sha256"], fingerprint["files_sha256"], fingerprint["names_sha256"])
        log.info("split inputs changed (labels, settings or image files): rebuilding %s", root)

    train, valid = split_train_valid(images, valid_ratio, seed)
    tmp = f"{root}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    use_symlink = False
    for part, members in (("train", train), ("valid", valid), ("train_valid", range(len(images.ids)))):
        for label in images.classes:
            os.makedirs(os.path.join(tmp, part, label))
        for i in members:
            src = images.paths[i]
            dst = os.path.join(tmp, part, images.labels[i], os.path.basename(src))
            use_symlink = _link(src, dst, use_symlink) or use_symlink
    link_kind = "symlink" if use_symlink else "hardlink"
    manifest = {"fingerprint": fingerprint, "n_train": len(train), "n_valid": len(valid), "link_kind": link_kind}
    with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    log.info("built split tree %s (%d train, %d valid, %ss)", root, len(train), len(valid), link_kind)
    return SplitTree(root, len(train), len(valid), link_kind, fingerprint["labels_sha256"],
                     fingerprint["files_sha256"], fingerprint["names_sha256"])


FEW = 0.25  # a class with fewer images than this share of the median class is worth a warning


def warn_if_unbalanced(folder: str) -> dict[str, int]:
    """Warn (not fail: the user may mean it) when the classes of a split folder cannot train well:
    one class only, a class without images, a class with far fewer images than the others.
    Returns the count per class."""
    counts = {c: len(os.listdir(os.path.join(folder, c))) for c in sorted(os.listdir(folder))
              if os.path.isdir(os.path.join(folder, c))}
    listed = lambda names: ", ".join(f"{c} ({counts[c]})" for c in names)  # noqa: E731
    if len(counts) == 1:
        log.warning("%s: one class only (%s): the network can only learn to predict it", folder, listed(counts))
        return counts
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        log.warning("%s: classes with no training images after the split: %s; they will never be predicted. "
                    "Add images, or lower --valid-ratio", folder, listed(empty))
    median = sorted(counts.values())[len(counts) // 2]
    few = [c for c, n in counts.items() if 0 < n < FEW * median]
    if few:
        log.warning("%s: classes with far fewer training images than the median class (%d): %s; expect them to "
                    "be predicted poorly", folder, median, listed(few))
    return counts
