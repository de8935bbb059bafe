"""A small whitened convnet for fast CIFAR-10 training on a CPU (the `cpu-fast` preset's network).

Built from the published ideas behind the fastest CIFAR-10 training recipes (Page's "How to
train your ResNet" series; Keller Jordan's airbench, "94% on CIFAR-10 in 3.29 seconds on a single
GPU", 2024); no code is taken from them:

- a first 2x2 convolution that *whitens* the input: its filters are the principal components of
  2x2 training patches, each scaled by 1/sqrt(its variance), and their negations (so the GELU
  after it keeps both signs). Computed once from data and frozen;
- three groups of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU (64/256/256 channels), a
  final max-pool and a bias-free linear head whose output is scaled by 1/9;
- BatchNorm without a learned scale (only the offset learns), so every conv is scale-invariant;
- each 3x3 conv starts with its first `in_channels` filters as the identity (a "partial Dirac"
  initialisation), so at the start every group passes its input through.

Same legacy `hybrid_forward(F, ...)` API as model.py, so export and bfloat16 conversion work.
"""
from __future__ import annotations

import numpy as np
from mxnet import nd
from mxnet.gluon import HybridBlock, nn

# fastnet: airbench94's widths; fastnet_wide: airbench95's (2.6x the multiply-adds of fastnet a step, for about
# one point more on CIFAR-10 at 15 epochs); fastnet_small: for tests and demos.
WIDTHS = {"fastnet": (64, 256, 256), "fastnet_wide": (128, 384, 384), "fastnet_small": (64, 128, 128)}
PATCH = 2
HEAD_SCALE = 1 / 9


BLOCK = 16  # channel multiple of oneDNN 2.4's blocked convolution kernels (MXNet 1.9.1)
# oneDNN 2.4's bfloat16 kernel for a first layer (few input channels, read unblocked) takes its inputs in
# pairs (weights AcdB16a2b): with 3 it falls back to GEMM, whose unblocked output costs two layout
# reorders of the 1024x32x31x31 activation a step (docs/BENCHMARKS.md, "The first layer in pairs").
FIRST_LAYER_PAIRS = 2


def zero_padded(F, array, axis: int, extra: int):
    """`array` with `extra` slices of zeros appended along `axis` (itself when extra is 0)."""
    if not extra:
        return array
    zeros = F.zeros_like(F.slice_axis(array, axis=axis, begin=0, end=1))
    return F.concat(array, *[zeros] * extra, dim=axis)


class PaddedConv2D(nn.Conv2D):
    """A Conv2D that computes with its channel counts rounded up by zeros to multiples oneDNN computes fast.

    oneDNN 2.4 has blocked kernels only for channel counts that are multiples of 16; FastNet's 24
    whitened channels sent the first group's forward, backward-data and backward-weights passes to
    a GEMM fallback 2-3x slower (docs/BENCHMARKS.md, "Where a step's time goes"). Here the weight
    (and bias) get zero filters up to a multiple of `out_multiple` outputs, which are exactly 0 (and
    stay 0 after GELU), and zero columns for the zero channels the previous layer (or the network, for
    its input) adds up to a multiple of `in_multiple`. Only the parameters are padded, inside the
    graph: they keep their shapes, so the network computes the same function and saved parameters
    load unchanged.
    """

    def __init__(self, channels: int, kernel_size: int, in_channels: int, in_multiple: int = 1,
                 out_multiple: int = 1, **kwargs) -> None:
        super().__init__(channels, kernel_size, in_channels=in_channels, **kwargs)
        self.extra_in = -in_channels % in_multiple  # zero input channels the caller appends
        self.extra_out = -channels % out_multiple
        self._kwargs["num_filter"] = channels + self.extra_out

    def hybrid_forward(self, F, x, weight, bias=None):
        weight = zero_padded(F, zero_padded(F, weight, 1, self.extra_in), 0, self.extra_out)  # (O + out, I + in, k, k)
        if bias is not None:
            bias = zero_padded(F, bias, 0, self.extra_out)
        return super().hybrid_forward(F, x, weight, bias)


class ConvGroup(HybridBlock):
    """conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU; halves the resolution."""

    def __init__(self, channels: int, in_channels: int, bn_momentum: float, padded_input: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = PaddedConv2D(channels, 3, in_channels, in_multiple=BLOCK if padded_input else 1, padding=1,
                                      use_bias=False)
            self.bn1 = nn.BatchNorm(momentum=bn_momentum, epsilon=1e-5, scale=False, in_channels=channels)
            self.conv2 = nn.Conv2D(channels, 3, padding=1, use_bias=False, in_channels=channels)
            self.bn2 = nn.BatchNorm(momentum=bn_momentum, epsilon=1e-5, scale=False, in_channels=channels)
            self.act1, self.act2 = nn.GELU(), nn.GELU()

    def hybrid_forward(self, F, x):
        x = self.act1(self.bn1(F.Pooling(self.conv1(x), kernel=(2, 2), stride=(2, 2), pool_type="max")))
        return self.act2(self.bn2(self.conv2(x)))


class FastNet(HybridBlock):
    """(B, 3, 32, 32) normalised images -> (B, classes) logits; see the module docstring."""

    # bn_momentum is MXNet's: the weight the running statistics keep at each batch. 0.4 is short
    # memory (the lookahead averages them as well); airbench's setting is 0.6 in this convention.
    # It only sets the running statistics: 0.6 scored the same holdout accuracy (BENCHMARKS).
    # pad_channels: compute the 3 input channels as 4 and the 24 whitened ones as 32 (PaddedConv2D); the same
    # function, faster.
    def __init__(self, widths: tuple[int, int, int], num_classes: int = 10, bn_momentum: float = 0.4,
                 pad_channels: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        whiten_channels = 2 * 3 * PATCH * PATCH
        with self.name_scope():
            self.whiten = PaddedConv2D(whiten_channels, PATCH, 3, in_multiple=FIRST_LAYER_PAIRS if pad_channels else 1,
                                       out_multiple=BLOCK if pad_channels else 1)
            self.whiten.weight.grad_req = "null"  # fixed by init_whitening; its bias still learns
            self.act = nn.GELU()
            self.groups = nn.HybridSequential()
            in_channels = whiten_channels
            for width in widths:
                first = not len(self.groups)  # only the first group reads the padded whitening
                self.groups.add(ConvGroup(width, in_channels, bn_momentum, padded_input=pad_channels and first))
                in_channels = width
            self.head = nn.Dense(num_classes, use_bias=False, in_units=in_channels)

    def hybrid_forward(self, F, x):
        x = zero_padded(F, x, 1, self.whiten.extra_in)
        x = self.groups(self.act(self.whiten(x)))  # 32 -> 31 (2x2 conv) -> 15 -> 7 -> 3
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="max").flatten()
        return self.head(x) * HEAD_SCALE

    def init_from_data(self, images: np.ndarray) -> None:
        """Set the whitening filters from (N, 3, 32, 32) normalised training images, and make each
        3x3 conv's first filters the identity. Call after `initialize`, before training."""
        self.whiten.weight.set_data(nd.array(whitening_filters(images)))
        self.whiten.bias.set_data(nd.zeros(self.whiten.bias.shape))
        # U(+-1/sqrt(fan_in)) rather than Xavier: smaller, so the identity filters dominate at the start.
        for conv in [g.conv1 for g in self.groups] + [g.conv2 for g in self.groups] + [self.head]:
            shape = conv.weight.shape
            bound = 1 / np.sqrt(np.prod(shape[1:]))
            weight = nd.random.uniform(-bound, bound, shape=shape).asnumpy()
            if len(shape) == 4:
                identity = min(shape[0], shape[1])
                weight[:identity] = 0
                weight[np.arange(identity), np.arange(identity), 1, 1] = 1
            conv.weight.set_data(nd.array(weight))


def whitening_filters(images: np.ndarray, eps: float = 5e-4, chunk: int = 250) -> np.ndarray:
    """(2 * 3 * 2 * 2, 3, 2, 2) conv filters: the eigenvectors of the covariance of all 2x2 patches
    of `images` (N, 3, H, W), each divided by sqrt(eigenvalue + eps), then the same negated.

    The covariance is summed in float64 over `chunk` images at a time: the 4.8 million patches of 5,000
    images are never all in memory at once (230 MB in float32, whose copies cost 3.6-4.6 s before a run's
    first step; this takes 0.4), and float32 sums over that many lose the smallest components (filters 0.07 off)."""
    n, channels, height, width = images.shape
    size = channels * PATCH * PATCH
    sums, products, count = np.zeros(size), np.zeros((size, size)), 0
    for start in range(0, n, chunk):
        nhwc = np.asarray(images[start:start + chunk].transpose(0, 2, 3, 1), dtype=np.float64)
        # (chunk, H-1, W-1, C, 2, 2): each patch's pixels in (channel, row, column) order, as the filters hold them
        windows = np.lib.stride_tricks.sliding_window_view(nhwc, (PATCH, PATCH), axis=(1, 2))
        patches = windows.reshape(-1, size)
        sums += patches.sum(axis=0)
        products += patches.T @ patches
        count += len(patches)
    mean = sums / count
    covariance = (products - count * np.outer(mean, mean)) / (count - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    filters = (eigenvectors.T / np.sqrt(eigenvalues + eps)[:, None]).reshape(-1, channels, PATCH, PATCH)
    return np.concatenate([filters, -filters]).astype(np.float32)


def fastnet(name: str, num_classes: int = 10) -> FastNet:
    """`fastnet` (64/256/256 channels), `fastnet_wide` (128/384/384) or `fastnet_small` (64/128/128), uninitialised."""
    return FastNet(WIDTHS[name], num_classes, prefix=f"{name}_")
