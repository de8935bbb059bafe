"""Contexts: --gpus / --cpus turned into MXNet contexts (once, in the script), and batches split over them."""
from __future__ import annotations

import mxnet as mx

from .errors import ConfigError


def resolve_contexts(gpu_ids: list[int], cpus: int = 1) -> list[mx.Context]:
    """GPU contexts if ids are given (each must exist), else `cpus` CPU contexts.

    Several CPU contexts run the multi-device code path on a machine without GPUs: each holds
    a replica of the parameters and a slice of every batch, exactly as GPUs would.
    """
    if not gpu_ids:
        return [mx.cpu(i) for i in range(cpus)]
    available = mx.context.num_gpus()
    missing = [i for i in gpu_ids if i >= available]
    if missing:
        build = "a CPU-only MXNet build" if available == 0 else f"{available} GPU(s)"
        raise ConfigError(
            f"--gpus {','.join(map(str, gpu_ids))}: GPU {missing[0]} is not available here ({build} "
            f"sees {available} GPU(s)). Drop --gpus to train on the CPU (--cpus N splits over N "
            "CPU contexts), or install mxnet-cu112 on a CUDA machine (see README).")
    return [mx.gpu(i) for i in gpu_ids]


def shard(batch: mx.nd.NDArray, ctxs: list[mx.Context]) -> list[mx.nd.NDArray]:
    """Split along axis 0 over as many contexts as the batch has samples for (uneven is fine)."""
    used = ctxs[:min(len(ctxs), batch.shape[0])]
    return mx.gluon.utils.split_and_load(batch, used, even_split=False)
