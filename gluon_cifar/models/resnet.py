"""The book's ResNet-18 for 32x32 images.

The blocks use the legacy `hybrid_forward(self, F, x)` API with `F.*` (NDArray/Symbol)
operators rather than `mxnet.np`/`npx`: that works whatever MXNet's global numpy mode is, and
the graph it records has no `_npx_*` operators, which `HybridBlock.export` + ONNX export and
`mxnet.contrib.amp` cannot handle in MXNet 1.9.
"""
from __future__ import annotations

from mxnet.gluon import HybridBlock, nn


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
