#!/usr/bin/env python3
"""A training step's speed with its batch in pieces (`--batch-pieces`), the network's compute alone.

One process, one precision (AMP patches MXNet for a whole process): for each entry of --pieces in turn (repeat
an entry to see the noise, e.g. 1 4 1 4), a fresh hybridized network steps `--steps` batches of random images
after 2 untimed, through training/engine.py's train_step on one context. Peak memory is per process: measure
it with a run (`scripts/train.py ... --batch-pieces N` logs it), not here.

  python benchmarks/pieces.py --model fastnet_wide --batch-size 1024 --pieces 1 4 1 4 2 --steps 8
  python benchmarks/pieces.py --model fastnet --batch-size 2000 --pieces 1 4 1 4 --steps 5
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gluon_cifar  # noqa: E402  first, before MXNet loads: it sets the threads and asks for AMX (runtime.py)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import gluon, nd  # noqa: E402

from gluon_cifar.config import Config  # noqa: E402
from gluon_cifar.models import build_model  # noqa: E402
from gluon_cifar.training.engine import train_step  # noqa: E402
from gluon_cifar.training.optim import enable_mixed_precision, make_trainer  # noqa: E402
from gluon_cifar.training.parts import TrainingParts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--pieces", type=int, nargs="+", default=[1, 4, 1, 4])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    enable_mixed_precision(args.precision)
    print(f"{gluon_cifar.STARTUP.cpu}, AMX {gluon_cifar.STARTUP.amx}", flush=True)
    sample = np.random.default_rng(0).normal(size=(5000, 3, 32, 32)).astype(np.float32)
    rng = np.random.default_rng(1)
    images = nd.array(rng.normal(size=(args.batch_size, 3, 32, 32)))
    labels = nd.array(np.arange(args.batch_size) % 10)
    ctxs = [mx.cpu()]
    for pieces in args.pieces:
        net = build_model(args.model, 10, ctxs, seed=0, sample=sample)
        net.hybridize(static_alloc=True)
        parts = TrainingParts(net, make_trainer(net, Config(lr=0.05, momentum=0.9)),
                              gluon.loss.SoftmaxCrossEntropyLoss(), [], pieces=pieces)
        for step in (1, 2):  # the graph and oneDNN's primitives built
            train_step(parts, images, labels, ctxs, step)
        nd.waitall()
        started = time.perf_counter()
        for step in range(3, 3 + args.steps):
            train_step(parts, images, labels, ctxs, step)
        nd.waitall()
        rate = args.steps * args.batch_size / (time.perf_counter() - started)
        print(f"{args.model}, batches of {args.batch_size}, {args.precision}, {pieces} piece(s): {rate:.0f} img/s",
              flush=True)


if __name__ == "__main__":
    main()
