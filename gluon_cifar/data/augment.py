"""Augmentation of whole uint8 batches at once, on any context: each image's geometry as one affine map.

The book's per-image transform (transforms.train_transform) upsamples to 40x40, crops a random
square of 64-100% of that area and resizes it back to 32x32, then flips half the images. As
geometry that is: take a square of side s in [0.8, 1] of the image at a random position, mirror
it or not, resample to 32x32. Here each image's square and mirror become one 2x3 affine matrix
and a single `GridGenerator` + `BilinearSampler` resamples the whole batch (one interpolation
instead of two). The random numbers are drawn on the host from a generator the caller seeds, so
the stream depends on (seed, epoch, batch) alone.

`ShiftAugment` is the other common CIFAR recipe (pad 4, random crop, flip, optionally cutout);
with reflected padding and alternating flips it is the `cpu-fast` preset's augmentation. Its
shifts are whole pixels, so it needs no resampling: each image's window is gathered from the
padded uint8 batch with NumPy, on the Python thread that feeds the network, where it overlaps
the previous step's compute instead of queueing before it (docs/BENCHMARKS.md, "Where a step's
time goes"); only the cast and the normalisation run on the device.

Both take the batch as (B, H, W, 3) uint8 NumPy images and return it normalised on `ctx`.
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
    uint8 batch: (B, 3, H, W) normalised float32. Outside the image reads 0 (the mean colour)."""
    theta = nd.array(matrices, ctx=batch.context)
    grid = nd.GridGenerator(theta, transform_type="affine", target_shape=batch.shape[1:3])
    return nd.BilinearSampler(normalize(batch), grid)


class BookAugment:
    """The book's training augmentation for whole batches: `augment(images, rng, ctx=ctx)`."""

    def __init__(self, min_area: float = 0.64) -> None:
        self.min_area = min_area

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: np.ndarray | None = None,
                 epoch: int = 0, ctx: mx.Context | None = None) -> nd.NDArray:
        batch = to_context(images, ctx or mx.cpu())
        return resample(batch, crop_flip_matrices(rng, batch.shape[0], self.min_area))


def random_shifts(rng: np.random.Generator, n: int, max_shift: int,
                  mirror: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dy, dx, mirror) for `n` images: whole-pixel shifts of up to `max_shift` each way (what padding
    by `max_shift` and cropping at a random position does), and whether each is mirrored (default:
    with probability 1/2)."""
    dx = rng.integers(-max_shift, max_shift + 1, n)
    dy = rng.integers(-max_shift, max_shift + 1, n)
    if mirror is None:
        mirror = rng.random(n) < 0.5
    return dy, dx, mirror


def shifted_windows(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, mirror: np.ndarray, pad: int,
                    reflect: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each (H, W) window of the (B, H, W, C) `images` padded by `pad` pixels (mirrored borders with
    `reflect`, else zeros), moved by (dy[i], dx[i]) from the centre and mirrored where mirror[i];
    returns the windows and a (B, H, W) mask that is False where a window reads padding."""
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect" if reflect else "constant")
    # One slice per distinct shift and mirror, not a gather of every pixel by its own index: the same bytes in half
    # the time (cpu-fast's batches of 2000 on the AMX Xeon: 14-16 ms against 26-29, on the thread that feeds the
    # network)
    windows = np.empty_like(images)
    for sy, sx, flip in np.unique(np.stack([dy, dx, mirror], axis=1), axis=0):
        chosen = np.flatnonzero((dy == sy) & (dx == sx) & (mirror == flip))
        window = padded[chosen, pad + sy:pad + sy + height, pad + sx:pad + sx + width]
        windows[chosen] = window[:, :, ::-1] if flip else window
    ys = (pad + dy)[:, None] + np.arange(height)  # (B, H): rows of the padded images
    xs = (pad + dx)[:, None] + np.arange(width)  # (B, W)
    xs = np.where(mirror[:, None], xs[:, ::-1], xs)
    inside = ((ys >= pad) & (ys < pad + height))[:, :, None] & ((xs >= pad) & (xs < pad + width))[:, None, :]
    return windows, inside


def alternating_mirror(rows: np.ndarray, epoch: int, seed: int) -> np.ndarray:
    """Whether each image (by its row in the decoded array) is mirrored in `epoch` (0-based): a
    per-image coin from (seed, row) in even epochs, its opposite in odd ones. Every image is seen
    both ways within two epochs, rather than by chance (airbench's "alternating flip")."""
    # A multiplicative hash's top bit: a fair, fixed coin per (seed, row), without any state.
    seed_key = np.uint64(((seed & 0xFFFFFFFF) * 0x632BE59BD9B4E019) % 2 ** 64)  # Python ints: no overflow warning
    keys = rows.astype(np.uint64) + seed_key
    coin = (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(63)
    return (coin.astype(bool)) ^ bool(epoch % 2)


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
    `cutout` x `cutout` square. Padding and the blank square take the mean colour (0 once normalised),
    or with `reflect` the padding mirrors the image's border. `alternate_flips`: mirror each image in
    every other epoch (alternating_mirror, with `seed`) instead of at random."""

    def __init__(self, max_shift: int = 4, cutout: int = 0, reflect: bool = False, alternate_flips: bool = False,
                 seed: int = 0) -> None:
        self.max_shift, self.cutout, self.reflect = max_shift, cutout, reflect
        self.alternate_flips, self.seed = alternate_flips, seed

    def __call__(self, images: np.ndarray, rng: np.random.Generator, rows: np.ndarray | None = None,
                 epoch: int = 0, ctx: mx.Context | None = None) -> nd.NDArray:
        n, size, ctx = images.shape[0], images.shape[1:3], ctx or mx.cpu()
        if self.alternate_flips and rows is None:
            raise ValueError("alternating flips need each image's row in the decoded array")
        mirror = alternating_mirror(rows, epoch, self.seed) if self.alternate_flips else None
        windows, inside = shifted_windows(images, *random_shifts(rng, n, self.max_shift, mirror), self.max_shift,
                                          self.reflect)
        out = normalize(to_context(windows, ctx))
        keep = None if self.reflect else inside[:, None].astype(np.float32)  # mean-colour padding: 0 once normalised
        if self.cutout:
            masks = cutout_masks(rng, n, size, self.cutout)
            keep = masks if keep is None else keep * masks
        return out if keep is None else nd.broadcast_mul(out, nd.array(keep, ctx=ctx))


def make_augment(name: str, seed: int = 0) -> BookAugment | ShiftAugment:
    """The augmentation named by Config.augment; `seed`: the run's (for alternating flips)."""
    if name == "book":
        return BookAugment()
    if name == "reflect-shift-altflip":
        return ShiftAugment(max_shift=2, reflect=True, alternate_flips=True, seed=seed)
    return ShiftAugment(max_shift=4, cutout=16 if name == "pad-crop-cutout" else 0)


def to_context(images: np.ndarray, ctx: mx.Context) -> nd.NDArray:
    """uint8 images onto the context: 4x fewer bytes to move than float32."""
    return nd.array(images, ctx=ctx, dtype=np.uint8)
