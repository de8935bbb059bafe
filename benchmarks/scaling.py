#!/usr/bin/env python3
"""What a dist_sync step moves, and what its synchronisation costs on loopback with N workers.

Per network (the book's ResNet-18 and cpu-fast's FastNet): the trainable parameters and the bytes
each worker pushes (its gradients) and pulls (their sum) every step, as gluon.Trainer does with
update_on_kvstore=False. Then, for 1, 2 and 4 workers with one server, all on this machine
through scripts/launch.py, the time of one synchronisation step alone (push every gradient,
pull every sum, wait), with no computation around it, and its effective bandwidth.

  python benchmarks/scaling.py --steps 30

Run with nothing else running: on a 2-core machine 4 workers and a server already share 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import ROOT, machine

LAUNCH = [sys.executable, os.path.join(ROOT, "scripts", "launch.py")]
NETWORKS = ("resnet18", "fastnet")


def shapes(model: str) -> list[tuple[int, ...]]:
    sys.path.insert(0, ROOT)
    import gluon_cifar  # noqa: F401  (first, before MXNet loads)
    import mxnet as mx
    from gluon_cifar.models import build_model

    net = build_model(model, 10, [mx.cpu()], seed=0)
    return [p.shape for p in net.collect_params().values() if p.grad_req != "null"]


def probe(model: str, steps: int) -> None:
    """A worker: time `steps` push+pull rounds of the network's gradient shapes (after 3 warm-up rounds)."""
    import mxnet as mx

    store = mx.kv.create("dist_sync")
    grads = [mx.nd.ones(shape) for shape in shapes(model)]
    keys = list(range(len(grads)))
    store.init(keys, [mx.nd.zeros(g.shape) for g in grads])
    times = []
    for step in range(steps + 3):
        start = time.perf_counter()
        store.push(keys, grads)
        store.pull(keys, out=grads)
        mx.nd.waitall()
        if step >= 3:
            times.append(time.perf_counter() - start)
        grads = [g / store.num_workers for g in grads]  # keep the values bounded
    print(json.dumps({"rank": store.rank, "workers": store.num_workers, "step_s": sorted(times)[len(times) // 2]}))


def sync_time(model: str, workers: int, steps: int) -> float:
    command = [*LAUNCH, "-n", str(workers), "-s", "1", "--threads-per-worker", "1", "--", sys.executable,
               os.path.abspath(__file__), "--probe", model, "--steps", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    reports = [json.loads(line.split("] ", 1)[1]) for line in result.stdout.splitlines()
               if line.startswith("[worker") and "] {" in line]
    assert len(reports) == workers, result.stdout[-2000:]
    return max(r["step_s"] for r in reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        sys.path.insert(0, ROOT)
        probe(args.probe, args.steps)
        return 0
    print(f"machine: {machine()}")
    for model in NETWORKS:
        n_params = sum(int(__import__("numpy").prod(s)) for s in shapes(model))
        bytes_each_way = 4 * n_params
        row = {"model": model, "parameters": n_params, "push_bytes_per_worker_step": bytes_each_way,
               "pull_bytes_per_worker_step": bytes_each_way}
        for workers in (1, 2, 4):
            seconds = sync_time(model, workers, args.steps)
            row[f"sync_s_{workers}w"] = round(seconds, 4)
            # one server receives every worker's push and sends every pull
            row[f"server_gbit_s_{workers}w"] = round(2 * workers * bytes_each_way * 8 / seconds / 1e9, 2)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
