"""The book's ResNet-18 for 32x32 images, and a factory that also serves fastnet.py's networks and
GluonCV's CIFAR models.

The blocks use the legacy `hybrid_forward(self, F, x)` API with `F.*` (NDArray/Symbol)
operators rather than `mxnet.np`/`npx`: that works whatever MXNet's global numpy mode is, and
the graph it records has no `_npx_*` operators, which `HybridBlock.export` + ONNX export and
`mxnet.contrib.amp` cannot handle in MXNet 1.9.
"""
from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import init
from mxnet.gluon import HybridBlock, nn

from .errors import ConfigError
from .fastnet import WIDTHS as FASTNETS
from .fastnet import fastnet


class Residual(HybridBlock):
    """Two 3x3 conv-BN layers plus a shortcut; a 1x1 conv projects the shortcut when the shape changes."""

    def __init__(self, channels: int, in_channels: int, strides: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        project = strides != 1 or channels != in_channels
        with self.name_scope():
            self.conv1 = nn.Conv2D(channels, 3, strides=strides, padding=1, in_channels=in_channels)
            self.bn1 = nn.BatchNorm(in_channels=channels)
            self.conv2 = nn.Conv2D(channels, 3, padding=1, in_channels=channels)
            self.bn2 = nn.BatchNorm(in_channels=channels)
            self.project = nn.Conv2D(channels, 1, strides=strides, in_channels=in_channels) if project else None

    def hybrid_forward(self, F, x):  # x: (B, C_in, H, W) -> (B, C, H / strides, W / strides)
        y = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        y = self.bn2(self.conv2(y))
        shortcut = self.project(x) if self.project is not None else x
        return F.Activation(y + shortcut, act_type="relu")


def resnet18(num_classes: int = 10) -> nn.HybridSequential:
    """The book's ResNet-18: 3x3 stem, stages of 64/128/256/512 channels with two residuals each.

    Returns the network uninitialised, like every Gluon model; see `build_model` for Xavier init.
    """
    net = nn.HybridSequential(prefix="resnet18_")
    with net.name_scope():
        net.add(nn.Conv2D(64, 3, padding=1, in_channels=3), nn.BatchNorm(in_channels=64), nn.Activation("relu"))
        in_channels = 64
        for stage, channels in enumerate((64, 128, 256, 512)):
            strides = 1 if stage == 0 else 2  # the first stage keeps 32x32; each later one halves it
            net.add(Residual(channels, in_channels, strides), Residual(channels, channels))
            in_channels = channels
        net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes, in_units=512))
    return net


def check_model_name(name: str) -> None:
    """Raise ConfigError listing the valid names unless `name` is one of ours or a GluonCV CIFAR model."""
    if name == "resnet18" or name in FASTNETS:
        return
    from gluoncv.model_zoo import get_model_list  # slow import: only for GluonCV models
    cifar_models = sorted(m for m in get_model_list() if m.startswith("cifar_"))
    if name not in cifar_models:
        raise ConfigError(f"unknown model {name!r}; choose resnet18, {', '.join(FASTNETS)} or a GluonCV CIFAR model: "
                          + ", ".join(cifar_models))


def build_model(name: str, num_classes: int, ctx, seed: int | None = None,
                sample: np.ndarray | None = None) -> HybridBlock:
    """A network by name, Xavier-initialised on every context in `ctx`, every shape known.

    `sample`: (N, 3, 32, 32) normalised training images for the fastnets' data-dependent
    initialisation (their whitening filters); leave it out when loading trained parameters.
    """
    check_model_name(name)
    net = _construct(name, num_classes)
    if any(dim <= 0 for param in net.collect_params().values() for dim in param.shape):
        _infer_shapes(net, _construct(name, num_classes))
    if seed is not None:
        mx.random.seed(seed)  # initialisation draws from MXNet's generator
    net.initialize(init.Xavier(), ctx=ctx)
    if sample is not None and name in FASTNETS:
        net.init_from_data(sample)
    return net


def _construct(name: str, num_classes: int) -> HybridBlock:
    if name == "resnet18":
        return resnet18(num_classes)
    if name in FASTNETS:
        return fastnet(name, num_classes)
    from gluoncv.model_zoo import get_model
    return get_model(name, classes=num_classes)


def _infer_shapes(net: HybridBlock, probe: HybridBlock) -> None:
    """Give `net` the parameter shapes GluonCV's models only learn on a first forward pass, taken
    from a forward pass of `probe` (the same architecture), which is then thrown away.

    Not from a pass of `net` itself: an inference-mode pass lets oneDNN convert the weights to its
    own layout in place, and networks trained from there came out bitwise different from run to
    run under MXNet's threaded engine (cifar_resnet20_v1, fastnet; not with the NaiveEngine). With
    every shape known before `initialize`, parameters can also be saved, loaded and synchronised
    before training starts.
    """
    probe.initialize(ctx=mx.cpu())
    probe(mx.nd.zeros((1, 3, 32, 32)))
    for param, inferred in zip(net.collect_params().values(), probe.collect_params().values()):
        param.shape = inferred.shape
