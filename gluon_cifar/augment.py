"""Augmentation of whole uint8 batches at once, on any context: each image's geometry as one affine map.

The book's per-image transform (transforms.train_transform) upsamples to 40x40, crops a random
square of 64-100% of that area and resizes it back to 32x32, then flips half the images. As
geometry that is: take a square of side s in [0.8, 1] of the image at a random position, mirror
it or not, resample to 32x32. Here each image's square and mirror become one 2x3 affine matrix
and a single `GridGenerator` + `BilinearSampler` resamples the whole batch (one interpolation
instead of two). The random numbers are drawn on the host from a generator the caller seeds, so
the stream depends on (seed, epoch, batch) alone.

`ShiftAugment` is the other common CIFAR recipe (pad 4, random crop, flip, optionally cutout),
built the same way: a whole-pixel shift is an affine map too.
"""
from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import nd

from .transforms import MEAN, STD


def normalize(batch: nd.NDArray) -> nd.NDArray:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32, scaled to [0, 1] and standardised per channel."""
    x = batch.astype("float32").transpose((0, 3, 1, 2))
    mean = nd.array(MEAN, ctx=batch.context).reshape((1, 3, 1, 1)) * 255
    std = nd.array(STD, ctx=batch.context).reshape((1, 3, 1, 1)) * 255
    return nd.broadcast_div(nd.broadcast_sub(x, mean), std)


def crop_flip_matrices(rng: np.random.Generator, n: int, min_area: float = 0.64) -> np.ndarray:
    """(n, 6) affine matrices, output -> input in [-1, 1] coordinates: a random square of
    `min_area`..100% of the image's area at a random position, mirrored with probability 1/2."""
    side = np.sqrt(rng.uniform(min_area, 1.0, n))  # as RandomResizedCrop: area uniform, ratio 1
    centre_x = rng.uniform(-1.0, 1.0, n) * (1 - side)  # keeps the square inside the image
    centre_y = rng.uniform(-1.0, 1.0, n) * (1 - side)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    zeros = np.zeros(n)
    return np.stack([side * mirror, zeros, centre_x, zeros, side, centre_y], axis=1).astype(np.float32)


def resample(batch: nd.NDArray, matrices: np.ndarray) -> nd.NDArray:
    """Apply one (6,) affine matrix per image (output -> input, [-1, 1] coordinates) to a (B, H, W, 3)
    uint8 batch: (B, 3, H, W) normalised float32. Outside the image reads 0: the mean colour."""
    x = normalize(batch)
    theta = nd.array(matrices, ctx=batch.context)
    grid = nd.GridGenerator(theta, transform_type="affine", target_shape=x.shape[2:])
    return nd.BilinearSampler(x, grid)


class BookAugment:
    """The book's training augmentation for whole batches: `augment(batch, rng)`."""

    def __init__(self, min_area: float = 0.64) -> None:
        self.min_area = min_area

    def __call__(self, batch: nd.NDArray, rng: np.random.Generator) -> nd.NDArray:
        return resample(batch, crop_flip_matrices(rng, batch.shape[0], self.min_area))


def shift_flip_matrices(rng: np.random.Generator, n: int, size: tuple[int, int], max_shift: int) -> np.ndarray:
    """(n, 6) affine matrices: a whole-pixel shift of up to `max_shift` each way (what padding by
    `max_shift` and cropping at a random position does), mirrored with probability 1/2."""
    height, width = size
    shift_x = rng.integers(-max_shift, max_shift + 1, n) * 2.0 / (width - 1)  # one pixel in [-1, 1] units
    shift_y = rng.integers(-max_shift, max_shift + 1, n) * 2.0 / (height - 1)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    zeros, ones = np.zeros(n), np.ones(n)
    return np.stack([mirror, zeros, shift_x, zeros, ones, shift_y], axis=1).astype(np.float32)


def cutout_masks(rng: np.random.Generator, n: int, size: tuple[int, int], side: int) -> np.ndarray:
    """(n, 1, H, W) float32 masks, 0 on a `side` x `side` square centred anywhere in the image (so it
    may be cut by the border, as in DeVries & Taylor 2017), 1 elsewhere."""
    height, width = size
    centre_y, centre_x = rng.integers(0, height, n), rng.integers(0, width, n)
    rows = np.abs(np.arange(height)[None, :] - centre_y[:, None] + 0.5) < side / 2  # (n, H)
    cols = np.abs(np.arange(width)[None, :] - centre_x[:, None] + 0.5) < side / 2  # (n, W)
    return (~(rows[:, :, None] & cols[:, None, :]))[:, None].astype(np.float32)


class ShiftAugment:
    """Pad by `max_shift`, crop back at a random position, flip; with `cutout` > 0, also blank a
    `cutout` x `cutout` square. Padding and the blank square take the mean colour (0 once normalised)."""

    def __init__(self, max_shift: int = 4, cutout: int = 0) -> None:
        self.max_shift, self.cutout = max_shift, cutout

    def __call__(self, batch: nd.NDArray, rng: np.random.Generator) -> nd.NDArray:
        size = batch.shape[1:3]
        out = resample(batch, shift_flip_matrices(rng, batch.shape[0], size, self.max_shift))
        if self.cutout:
            out = nd.broadcast_mul(out, nd.array(cutout_masks(rng, batch.shape[0], size, self.cutout),
                                                 ctx=batch.context))
        return out


def make_augment(name: str) -> BookAugment | ShiftAugment:
    """The augmentation named by Config.augment."""
    return {"book": BookAugment, "pad-crop": ShiftAugment,
            "pad-crop-cutout": lambda: ShiftAugment(max_shift=4, cutout=16)}[name]()


def to_context(images: np.ndarray, ctx: mx.Context) -> nd.NDArray:
    """uint8 images onto the context: 4x fewer bytes to move than float32."""
    return nd.array(images, ctx=ctx, dtype=np.uint8)
