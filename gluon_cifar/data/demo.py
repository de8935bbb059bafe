"""A small offline dataset in the exact Kaggle layout, so the pipeline runs with nothing downloaded.

Ten classes, named like CIFAR-10's, each drawn as its own shape and colour family on a noisy
background, at random positions, sizes and brightness: easy to learn far above chance in a few
epochs, hard enough that it is not solved by the first batch.
"""
from __future__ import annotations

import csv
import os
import shutil

import numpy as np
from PIL import Image

from .. import CIFAR10_CLASSES
from ..atomic import exclusive

DEMO_VERSION = 1
_YY, _XX = np.mgrid[0:32, 0:32].astype(np.float32)


def _mask(kind: int, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = _YY - cy, _XX - cx
    masks = [
        (np.abs(dy) < r) & (np.sin(_YY * 1.2) > 0),            # horizontal stripes
        (np.abs(dx) < r) & (np.sin(_XX * 1.2) > 0),            # vertical stripes
        dy ** 2 + dx ** 2 < r ** 2,                            # disc
        (np.maximum(np.abs(dy), np.abs(dx)) < r) & (np.maximum(np.abs(dy), np.abs(dx)) > r - 3),  # square outline
        np.sin((_YY + _XX) * 0.9) > 0.3,                       # diagonal stripes
        ((_YY // 4 + _XX // 4) % 2 == 0) & (np.abs(dx) < r),   # checkerboard
        (np.abs(dy) < 2) | (np.abs(dx) < 2),                   # cross
        (dy > -r) & (np.abs(dx) < (dy + r) / 2) & (dy < r),    # triangle
        np.abs(np.sqrt(dy ** 2 + dx ** 2) - r) < 2,            # ring
        dx + dy > 0,                                           # half plane
    ]
    return masks[kind]


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 RGB uint8 image of class `label`."""
    hue = np.array([[230, 40, 40], [40, 200, 40], [40, 80, 230], [230, 200, 40], [200, 40, 200],
                    [40, 210, 210], [240, 140, 20], [140, 70, 20], [240, 240, 240], [110, 110, 110]][label], np.float32)
    background = rng.uniform(0, 120, 3).astype(np.float32)
    cy, cx = rng.uniform(10, 22, 2)
    mask = _mask(label, cy, cx, rng.uniform(6, 11))[..., None]
    image = np.where(mask, hue * rng.uniform(0.7, 1.1), background)
    image += rng.normal(0, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def ensure_demo_dataset(cache_dir: str, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> str:
    """Path of the demo dataset, generating it once (into a temp dir, then renamed)."""
    root = os.path.join(cache_dir, f"demo-v{DEMO_VERSION}-{n_train}-{n_test}-{seed}")
    with exclusive(f"{root}.lock"):  # concurrent first uses (distributed workers) generate it once
        if os.path.isfile(os.path.join(root, "sampleSubmission.csv")):
            return root
        rng = np.random.default_rng(seed)
        tmp = f"{root}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for part in ("train", "test"):
            os.makedirs(os.path.join(tmp, part))
        train_labels = rng.permutation(np.arange(n_train) % len(CIFAR10_CLASSES))
        for i, label in enumerate(train_labels, start=1):
            Image.fromarray(render(int(label), rng)).save(os.path.join(tmp, "train", f"{i}.png"))
        test_labels = rng.integers(0, len(CIFAR10_CLASSES), n_test)
        for i, label in enumerate(test_labels, start=1):
            Image.fromarray(render(int(label), rng)).save(os.path.join(tmp, "test", f"{i}.png"))
        for name, rows in (("trainLabels.csv", enumerate(train_labels, 1)),
                           ("sampleSubmission.csv", enumerate(test_labels, 1)),
                           ("answers.csv", enumerate(test_labels, 1))):
            with open(os.path.join(tmp, name), "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "label"])
                # the sample submission, like Kaggle's, carries placeholder labels only
                writer.writerows((i, "cat" if name == "sampleSubmission.csv" else CIFAR10_CLASSES[l]) for i, l in rows)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    return root
