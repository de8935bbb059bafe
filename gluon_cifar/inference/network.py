"""A trained network back from its parameters file."""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from ..config import Config
from ..errors import ConfigError
from ..models import build_model


def load_network(cfg: Config, classes: list[str], params: str, ctxs: list[mx.Context]) -> gluon.HybridBlock:
    """The run's network with trained parameters `params`, hybridized if the run was."""
    net = build_model(cfg.model, len(classes), ctxs)
    try:
        net.load_parameters(params, ctx=ctxs)
    except (mx.base.MXNetError, AssertionError, ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[-1][:200]  # MXNet's message ends with the reason
        raise ConfigError(f"{params} cannot be loaded ({reason}): it is damaged "
                          "or belongs to another network; train the run again (or pass another --params)") from None
    if cfg.hybridize:
        net.hybridize(static_alloc=True)
    return net
