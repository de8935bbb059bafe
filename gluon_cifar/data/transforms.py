"""The book's image transforms (d2l.ai, Kaggle CIFAR-10, MXNet tab)."""
from __future__ import annotations

from mxnet.gluon.data.vision import transforms as T

# Per-channel statistics of the CIFAR-10 training set, as used by the book.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def train_transform() -> T.Compose:
    """Upscale to 40x40, crop a random square of 64-100% of the area back to 32x32, flip."""
    return T.Compose([
        T.Resize(40),
        T.RandomResizedCrop(32, scale=(0.64, 1.0), ratio=(1.0, 1.0)),
        T.RandomFlipLeftRight(),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


def eval_transform() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
