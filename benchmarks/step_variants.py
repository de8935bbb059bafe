#!/usr/bin/env python3
"""Issue 24's changes to a FastNet training step, each measured alone, in one run.

Each cell is one process (AMP patches MXNet for a whole process) training FastNet with cpu-fast-sgd's
trainer and loop (cpu-fast's for `muon`) on batches already in memory (the network's compute alone): `--warmup` steps
untimed, then `--steps` timed. Variants:
  plain       the 24 whitened channels as they are (oneDNN 2.4's GEMM fallback for the first group)
  padded      the same network computed with 32 channels (fastnet.PaddedConv2D; the default)
  frozen      padded, with the whitening bias frozen (cpu-fast after its first 3 epochs)
and settings tried on `frozen` (`--variants frozen static-shape ...`; compare with the first listed):
  static-shape  hybridize(static_alloc=True, static_shape=True): memory planned once for the batch shape
  omp-bind      OpenMP threads pinned one per core (OMP_PROC_BIND=true, OMP_PLACES=cores; libgomp)
  omp-active    OpenMP threads spin between parallel regions instead of sleeping (OMP_WAIT_POLICY=active)
  muon          frozen, its filters updated by Muon (--optimizer muon: training/muon.py) instead of Nesterov SGD
Rounds alternate the variants so that a drifting machine hits all alike; the table gives the
median images/s and the median of each round's ratio to the first variant listed. `--trees` runs each
variant in each of several checkouts (e.g. `git worktree add` of two commits), to measure a change to
the network itself: the cells are then variant@checkout, each compared with its variant in the first checkout.
Several `--batch-size` values make cells variant/batch, each compared with the first listed cell.

  python benchmarks/step_variants.py --rounds 3 --precision bfloat16
  python benchmarks/step_variants.py --rounds 3 --variants frozen static-shape omp-bind omp-active
  python benchmarks/step_variants.py --rounds 4 --variants padded frozen --trees /tmp/before /tmp/after
  python benchmarks/step_variants.py --rounds 3 --variants frozen muon --batch-size 1024 2000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, machine

VARIANTS = ("plain", "padded", "frozen", "static-shape", "omp-bind", "omp-active", "muon")
ENVIRONMENT = {"omp-bind": {"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"},
               "omp-active": {"OMP_WAIT_POLICY": "active"}}


def probe(variant: str, precision: str, batch: int, warmup: int, steps: int) -> float:
    """In this process: images/s of `steps` training steps of `variant` after `warmup`."""
    sys.path.insert(0, ROOT)
    import gluon_cifar  # noqa: F401  first, before MXNet loads: it sets MXNet's threads (runtime.py)
    import mxnet as mx
    import numpy as np

    from gluon_cifar.config import Config
    from gluon_cifar.presets import PRESETS
    from gluon_cifar.models.fastnet import WIDTHS, FastNet
    from gluon_cifar.training.engine import train_one_epoch
    from gluon_cifar.training.optim import enable_mixed_precision, make_loss, make_trainer
    from gluon_cifar.training.parts import TrainingParts

    ctxs = [mx.cpu()]
    if precision == "bfloat16":
        enable_mixed_precision("bfloat16")
    cfg = Config.from_dict({**PRESETS["cpu-fast" if variant == "muon" else "cpu-fast-sgd"], "batch_size": batch})
    net = FastNet(WIDTHS["fastnet"], 10, pad_channels=variant != "plain", prefix="fastnet_")
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    net.init_from_data(np.random.default_rng(0).normal(size=(512, 3, 32, 32)).astype(np.float32))
    net.hybridize(static_alloc=True, static_shape=variant == "static-shape")
    data = [(mx.nd.random.normal(shape=(batch, 3, 32, 32)), mx.nd.array(np.arange(batch) % 10))] * (warmup + steps)
    parts = TrainingParts(net, make_trainer(net, cfg), make_loss(cfg), data,
                          learn_first=(1, (net.whiten.bias,)) if variant not in ("plain", "padded") else (0, ()))
    parts.start_epoch(2)  # past the first epoch: frozen for "frozen", nothing for the others
    train_one_epoch(parts, data[:warmup], ctxs, sync_every=1 << 30)
    start = time.perf_counter()
    train_one_epoch(parts, data[warmup:], ctxs, sync_every=1 << 30)  # reads the loss: waits
    return batch * steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1024])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS[:3]))
    parser.add_argument("--trees", nargs="+", metavar="CHECKOUT", help="run every variant in each of these checkouts")
    parser.add_argument("--probe", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.precision, args.batch_size[0], args.warmup, args.steps)))
        return 0
    trees = [os.path.abspath(t) for t in args.trees] if args.trees else [ROOT]
    cells = [(variant, tree, batch) for variant in args.variants for tree in trees for batch in args.batch_size]
    label = {cell: cell[0] + (f"@{os.path.basename(cell[1])}" if args.trees else "")
             + (f"/{cell[2]}" if len(args.batch_size) > 1 else "") for cell in cells}
    rates: dict[tuple[str, str, int], list[float]] = {cell: [] for cell in cells}
    for round_ in range(args.rounds):
        for cell in cells if round_ % 2 == 0 else cells[::-1]:
            variant, tree, batch = cell
            command = [sys.executable, os.path.join(tree, "benchmarks", "step_variants.py"), "--probe", variant,
                       "--precision", args.precision, "--batch-size", str(batch), "--warmup",
                       str(args.warmup), "--steps", str(args.steps)]
            result = subprocess.run(command, capture_output=True, text=True, check=True,
                                    env={**os.environ, **ENVIRONMENT.get(variant, {})})
            rates[cell].append(float(result.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1}: {label[cell]}: {rates[cell][-1]:.1f} img/s", file=sys.stderr, flush=True)
    print(f"`python benchmarks/step_variants.py --rounds {args.rounds} --precision {args.precision} --batch-size "
          f"{' '.join(map(str, args.batch_size))} --warmup {args.warmup} --steps {args.steps} --variants "
          f"{' '.join(args.variants)}"
          f"{' --trees ' + ' '.join(args.trees) if args.trees else ''}`, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}; {machine()}\n")
    reference = (lambda cell: (cell[0], trees[0], cell[2])) if args.trees else (lambda cell: cells[0])
    compared_with = f"its variant@{os.path.basename(trees[0])}" if args.trees else label[cells[0]]
    print(f"| variant | training img/s (median) | x {compared_with} (median of rounds) |")
    print("| --- | --- | --- |")
    for cell in cells:
        ratios = [r / p for r, p in zip(rates[cell], rates[reference(cell)])]
        print(f"| {label[cell]} | {statistics.median(rates[cell]):.1f} | {statistics.median(ratios):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
