#!/usr/bin/env python3
"""One measurement of gluon_cifar per process, printed as a number on the last line: bench.py runs these.

  probes.py decode  DIR                       seconds to decode DIR/train once (cold cache)
  probes.py train   DIR --loader KIND         ResNet-18 training images/s, end to end
  probes.py train   DIR --loader memory      the same on batches made beforehand: compute alone
  probes.py loader  DIR --loader KIND         the training loader alone, images/s (model removed)
  probes.py predict DIR --dtype DTYPE         prediction images/s over DIR/test (untrained network,
                                              like the baseline's predict mode)

The cache of split trees and decoded images is $GLUON_CIFAR_CACHE (bench.py points it at scratch).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gluon_cifar  # noqa: E402,F401  (first: it sets MXNet's thread count, which MXNet reads on import)
import mxnet as mx  # noqa: E402
from mxnet import gluon  # noqa: E402

from gluon_cifar.config import Config  # noqa: E402
from gluon_cifar.data.decoded import decoded_images  # noqa: E402
from gluon_cifar.data.source import default_cache_dir  # noqa: E402
from gluon_cifar.training.engine import train_one_epoch  # noqa: E402
from gluon_cifar.training.optim import make_trainer  # noqa: E402
from gluon_cifar.training.parts import TrainingParts  # noqa: E402
from gluon_cifar.data.kaggle import read_test, read_train  # noqa: E402
from gluon_cifar.models import build_model  # noqa: E402
from gluon_cifar.inference.predict import cast_for_inference, predict_files  # noqa: E402
from gluon_cifar.data.source import open_training_data  # noqa: E402
from gluon_cifar.distributed.cluster import Cluster  # noqa: E402
from gluon_cifar.training.loaders import make_loaders  # noqa: E402


def _loader(cfg: Config, ctxs: list[mx.Context]):
    data = open_training_data(cfg, "train", show_progress=False)
    train, _ = make_loaders(cfg, data, Cluster("device"), ctxs, with_valid=False, show_progress=False)
    return train


def decode(cfg: Config) -> float:
    start = time.perf_counter()
    decoded_images(read_train(cfg.data_dir).paths, cfg.cache_dir or default_cache_dir(), cfg.num_workers,
                   show_progress=False)
    return time.perf_counter() - start


def train(cfg: Config, batches: int, in_memory: bool = False) -> float:
    """`in_memory`: train on the decoded loader's first batches made beforehand (compute alone)."""
    ctxs = [mx.cpu()]
    loader = _loader(cfg, ctxs)
    if in_memory:
        loader = list(itertools.islice(loader, batches))
        mx.nd.waitall()
    net = build_model("resnet18", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    trainer = make_trainer(net, cfg)
    start = time.perf_counter()
    parts = TrainingParts(net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), loader)
    _, _, examples = train_one_epoch(parts, itertools.islice(loader, batches), ctxs)
    return examples / (time.perf_counter() - start)


def loader_alone(cfg: Config, batches: int) -> float:
    loader = _loader(cfg, [mx.cpu()])
    start = time.perf_counter()
    images = 0
    for data, _ in itertools.islice(loader, batches):
        data.wait_to_read()  # the decoded loader's work is asynchronous: count it done
        images += data.shape[0]
    return images / (time.perf_counter() - start)


def predict(cfg: Config, dtype: str, batch_size: int) -> float:
    ctxs = [mx.cpu()]
    net = build_model("resnet18", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    net = cast_for_inference(net, dtype, ctxs)
    _, paths = read_test(cfg.data_dir)
    start = time.perf_counter()
    predict_files(net, paths, ctxs, batch_size, cfg.num_workers)
    return len(paths) / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["decode", "train", "loader", "predict"])
    p.add_argument("data_dir")
    p.add_argument("--loader", default="decoded", help="decoded, folder, or memory (train, loader)")
    p.add_argument("--batches", type=int, default=20, help="(train, loader)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: 128; prediction: 512, as submit.py)")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--dtype", default="float32", help="(predict)")
    args = p.parse_args()
    in_memory = args.loader == "memory"
    cfg = Config(data_dir=args.data_dir, loader="decoded" if in_memory else args.loader, batch_size=args.batch_size,
                 num_workers=args.num_workers, cache_dir=os.environ.get("GLUON_CIFAR_CACHE")).validate()
    if args.what == "decode":
        value = decode(cfg)
    elif args.what == "train":
        value = train(cfg, args.batches, in_memory)
    elif args.what == "loader":
        value = loader_alone(cfg, args.batches)
    else:
        value = predict(cfg, args.dtype, args.batch_size)
    print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
