#!/usr/bin/env python3
"""Each batch's seconds as a time budget's probe steps them: cpu-fast's network learning its whitening bias, then
with the bias frozen (the speed timed next, on the same network: does its first batch build anything again?).

Random images, bfloat16 (AMP, for the whole process), one context, cpu-fast's trainer, batches of 2000 in 4 pieces:

  python benchmarks/first_batches.py --batches 4
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gluon_cifar  # noqa: E402,F401  first, before MXNet loads: it sets the threads and asks for AMX (runtime.py)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from gluon_cifar.config import Config  # noqa: E402
from gluon_cifar.models.fastnet import WIDTHS, FastNet  # noqa: E402
from gluon_cifar.presets import PRESETS  # noqa: E402
from gluon_cifar.training.engine import train_one_epoch  # noqa: E402
from gluon_cifar.training.optim import enable_mixed_precision, make_loss, make_trainer  # noqa: E402
from gluon_cifar.training.parts import TrainingParts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4, help="batches stepped in each phase")
    args = parser.parse_args()
    enable_mixed_precision("bfloat16")
    ctxs, cfg = [mx.cpu()], Config.from_dict(PRESETS["cpu-fast"])
    net = FastNet(WIDTHS["fastnet"], 10, prefix="fastnet_")
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    net.init_from_data(np.random.default_rng(0).normal(size=(512, 3, 32, 32)).astype(np.float32))
    net.hybridize(static_alloc=True)
    batch = (mx.nd.random.normal(shape=(cfg.batch_size, 3, 32, 32)), mx.nd.array(np.arange(cfg.batch_size) % 10))
    parts = TrainingParts(net, make_trainer(net, cfg), make_loss(cfg), [batch], learn_first=(3, (net.whiten.bias,)),
                          pieces=cfg.batch_pieces)
    for phase, epoch in (("whitening bias learning", 1), ("whitening bias frozen", 4)):
        parts.start_epoch(epoch)
        seconds = []
        for _ in range(args.batches):
            start = time.perf_counter()
            train_one_epoch(parts, [batch], ctxs, sync_every=1 << 30)  # reads the loss: waits for the step
            seconds.append(time.perf_counter() - start)
        print(f"{phase}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s a batch")


if __name__ == "__main__":
    main()
