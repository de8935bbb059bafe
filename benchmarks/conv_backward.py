#!/usr/bin/env python3
"""One 3x3 convolution's backward pass computed as forward convolutions: does it beat oneDNN 2.4's own kernels?

MXNet 1.9.1's oneDNN 2.4 runs a convolution's forward pass on AMX with its brgemm kernel (`brgconv`) but its two
backward passes on the older `jit:avx512_core_amx_bf16` kernels; oneDNN 3 computes backward-data as a forward
convolution. Both gradients can be written as forward convolutions by hand:

  data gradient    dx = conv(dy, W flipped in space, in and out channels swapped)       (same shape as forward)
  weight gradient  dW = conv(x with batch and channels swapped, dy likewise as the filters), a kernel as large
                   as the image and a 3x3 output, read back with its two channel axes swapped
  or as one matrix product: dW = dy (O, N*H*W) . im2col(x) (9*C, N*H*W)^T (FullyConnected)

This times each (bfloat16 through AMP, as cpu-fast trains; milliseconds a call, the median of `--reps`) against
autograd's forward + backward of the same convolution, and checks the hand-made gradients against autograd's:

  python benchmarks/conv_backward.py --shape 500 256 256 7 --shape 512 256 256 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gluon_cifar  # noqa: E402,F401  first, before MXNet loads: it sets the threads and asks for AMX (runtime.py)
import numpy as np  # noqa: E402
from mxnet import autograd, nd  # noqa: E402

from gluon_cifar.training.optim import enable_mixed_precision  # noqa: E402

BFLOAT16 = np.dtype([("bfloat16", np.uint16)])  # MXNet 1.9's name for it


def conv(data: nd.NDArray, weight: nd.NDArray, pad: int) -> nd.NDArray:
    return nd.Convolution(data, weight, kernel=weight.shape[2:], pad=(pad, pad), num_filter=weight.shape[0],
                          no_bias=True)


def median_ms(work: Callable[[], object], reps: int) -> float:
    work()
    nd.waitall()  # the first call creates the primitives
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        nd.waitall()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def relative_error(got: nd.NDArray, want: nd.NDArray) -> float:
    got, want = nd.amp_cast(got, dtype="float32"), nd.amp_cast(want, dtype="float32")
    return float((nd.norm(got - want) / nd.norm(want)).asscalar())


def measure(batch: int, channels: int, filters: int, side: int, reps: int) -> None:
    x = nd.amp_cast(nd.random.normal(shape=(batch, channels, side, side)), dtype=BFLOAT16)
    w = nd.random.normal(shape=(filters, channels, 3, 3)) * 0.05
    dy = nd.amp_cast(nd.random.normal(shape=(batch, filters, side, side)), dtype=BFLOAT16)

    def autograd_step() -> tuple[nd.NDArray, nd.NDArray]:
        data, weight = x.copy(), w.copy()
        data.attach_grad()
        weight.attach_grad()
        with autograd.record():
            out = conv(data, weight, 1)
        out.backward(dy)
        return data.grad, weight.grad

    flipped = w.flip(axis=(2, 3)).transpose((1, 0, 2, 3))
    x_swapped, dy_swapped = x.transpose((1, 0, 2, 3)), dy.transpose((1, 0, 2, 3))
    padded = nd.amp_cast(nd.pad(nd.amp_cast(x, dtype="float32"), mode="constant", pad_width=(0, 0, 0, 0, 1, 1, 1, 1)),
                         dtype=BFLOAT16).transpose((1, 0, 2, 3))

    def im2col() -> nd.NDArray:
        return nd.concat(*[nd.slice(padded, begin=(None, None, i, j), end=(None, None, i + side, j + side))
                           .reshape((channels, -1)) for i in range(3) for j in range(3)], dim=0)

    columns, dy_rows = im2col(), dy_swapped.reshape((filters, -1))
    rows = {
        "forward": lambda: conv(x, w, 1),
        "forward + backward (autograd: oneDNN's kernels)": autograd_step,
        "dx as a forward convolution": lambda: conv(dy, flipped, 1),
        "dW as a forward convolution": lambda: conv(x_swapped, dy_swapped, 1),
        "the two transposes dW's needs": lambda: (x.transpose((1, 0, 2, 3)), dy.transpose((1, 0, 2, 3))),
        "dW as one matrix product (FullyConnected)": lambda: nd.FullyConnected(dy_rows, columns, no_bias=True,
                                                                                num_hidden=9 * channels),
        "im2col for it (9 shifted slices)": im2col,
    }
    print(f"batch {batch}, {channels} -> {filters} channels, {side}x{side}:")
    for name, work in rows.items():
        print(f"  {name}: {median_ms(work, reps):.1f} ms")
    dx, dw = autograd_step()
    by_conv = conv(x_swapped, dy_swapped, 1).transpose((1, 0, 2, 3))
    by_product = nd.FullyConnected(dy_rows, columns, no_bias=True, num_hidden=9 * channels)
    by_product = by_product.reshape((filters, 9, channels)).transpose((0, 2, 1)).reshape(w.shape)
    print(f"  relative error against autograd: dx {relative_error(conv(dy, flipped, 1), dx):.1e}, "
          f"dW by convolution {relative_error(by_conv, dw):.1e}, by product {relative_error(by_product, dw):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=4, type=int, action="append", metavar=("BATCH", "IN", "OUT", "SIDE"),
                        help="a convolution to time (default: cpu-fast's 256 -> 256 at 7x7 on a piece of 500)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    enable_mixed_precision("bfloat16")
    for shape in args.shape or [[500, 256, 256, 7]]:
        measure(*shape, args.reps)


if __name__ == "__main__":
    main()
