"""Which kvstore sums the gradients, and where this process stands in a distributed run.

Within one process, the gradients of several contexts are summed by a `device` (or `local`, or
`nccl`) kvstore. Across processes and machines, MXNet's parameter server does it
(`dist_sync`, `dist_device_sync`): scripts/launch.py starts a scheduler, servers and workers,
configured by the DMLC_* environment variables, and each worker calls `connect`.

In distributed runs the weights are updated on the workers (`update_on_kvstore=False`): the
servers only sum gradients. With updates on the servers, `Trainer.set_learning_rate` and the
workers' learning-rate schedule never reach them (apache/mxnet#15919), so the book's decay every
`lr_period` epochs would silently not happen. Every worker applies the same summed gradient with
the same schedule, so the weights stay identical everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import mxnet as mx

from ..errors import ConfigError

DISTRIBUTED = ("dist_sync", "dist_device_sync")


@dataclass(frozen=True)
class Cluster:
    """This process's kvstore and place among the workers (rank 0 of 1 when not distributed)."""

    kvstore: object  # a kvstore type name or an mx.kv.KVStore: whatever gluon.Trainer takes
    rank: int = 0
    num_workers: int = 1

    @property
    def distributed(self) -> bool:
        return self.num_workers > 1 or isinstance(self.kvstore, mx.kv.KVStore)

    @property
    def is_root(self) -> bool:
        """Rank 0 alone validates and writes the run directory, checkpoints and submissions."""
        return self.rank == 0

    @property
    def update_on_kvstore(self) -> bool | None:
        return False if self.distributed else None  # see the module doc


def connect(kind: str, ctxs: list[mx.Context]) -> Cluster:
    """Create the kvstore named by --kvstore (Config.validate checked the name); `auto`: `device`
    for several contexts, none for one."""
    if kind == "auto":
        return Cluster("device")  # gluon.Trainer creates no kvstore at all for a single context
    if kind == "nccl" and any(c.device_type != "gpu" for c in ctxs):
        raise ConfigError("--kvstore nccl sums gradients between GPUs only; use device (or auto) on CPU contexts")
    if kind not in DISTRIBUTED:
        return Cluster(kind)
    if os.environ.get("DMLC_ROLE") != "worker":
        raise ConfigError(f"--kvstore {kind} runs under scripts/launch.py, which starts the parameter server: "
                          f"python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --kvstore {kind} ...")
    store = mx.kv.create(kind)
    return Cluster(store, store.rank, store.num_workers)


def worker_batch_size(batch_size: int, cluster: Cluster) -> int:
    """Each worker's share of the global batch, which must split evenly."""
    if batch_size % cluster.num_workers:
        raise ConfigError(f"--batch-size {batch_size} does not split evenly over {cluster.num_workers} workers; "
                          f"use a multiple of {cluster.num_workers}")
    return batch_size // cluster.num_workers


def initialize_kvstore(trainer) -> None:
    """Put the initial weights on the servers and give every worker rank 0's copy, before training.

    MXNet 1.9's Trainer does this lazily in the first `step`, with one broadcast (init, then pull)
    per parameter, and nothing orders that pull before the same step's gradient push under the
    same key. Measured here once with update_on_kvstore=False: a worker's first update moved its
    weights the wrong way, as if it had pulled the first summed gradient instead of the weights,
    and it stayed off by that for the whole run. So: init every key, wait, barrier, then pull,
    before any gradient exists; and tell the Trainer it is done.
    """
    trainer._init_kvstore()  # private: what step() would call first; there is no public equivalent
    store, params = trainer._kvstore, trainer._params
    keys = list(range(len(params)))
    # Copies: after an inference pass, oneDNN may hold a weight in its own layout, which the
    # kvstore cannot send ("can't generate TBlob for MKLDNN data"; the server then aborted with
    # "init 4 first" because rank 0's push never came); a copy is in the default layout.
    store.init(keys, [p.data().copy() for p in params])
    mx.nd.waitall()  # rank 0: its init pushes are done
    store._barrier()  # nobody pulls before that
    pulled = [mx.nd.zeros(p.shape, p.list_ctx()[0], dtype=p.dtype) for p in params]
    store.pull(keys, pulled)
    for param, value in zip(params, pulled):
        param.set_data(value)
    mx.nd.waitall()
    trainer._params_to_init = []  # so the first step does not broadcast again
