"""Networks: the book's ResNet-18 (resnet.py), the small whitened FastNets (fastnet.py), and the
factory that builds any of them, or a GluonCV CIFAR model, initialised.

Owns: architectures and their initialisation. Imports: MXNet, GluonCV, errors; nothing of the
data or training layers (a fastnet's data-dependent start is handed its sample images).
"""
from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import init
from mxnet.gluon import HybridBlock

from ..errors import ConfigError
from .fastnet import WIDTHS as FASTNETS
from .fastnet import fastnet
from .resnet import Residual, resnet18

__all__ = ["FASTNETS", "Residual", "build_model", "check_model_name", "fastnet", "resnet18"]


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
