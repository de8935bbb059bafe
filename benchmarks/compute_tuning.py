#!/usr/bin/env python3
"""ResNet-18 compute alone (batches already in memory): which MXNet settings are fastest here.

Each setting runs in a fresh process (thread settings are read when MXNet starts), one factor
varied at a time from the defaults, and the whole list is repeated over rounds in alternation so
that machine noise hits every setting alike. Reports training and inference images/s and the
achieved GFLOP/s (ResNet-18 CIFAR forward about 0.56 GMAC = 1.11 GFLOP per image; training about
3x that).

example:
  python benchmarks/compute_tuning.py --rounds 2 --batches 6
"""
import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time

from common import BASELINE, PRISTINE_ENV, ROOT
FORWARD_GFLOP = 1.11

# name: (environment, options); one factor at a time from the defaults (first row).
SETTINGS = {
    "MXNet's defaults (static_alloc, batch 128)": ({}, {}),
    "OMP_NUM_THREADS=1": ({"OMP_NUM_THREADS": "1"}, {}),
    "OMP_NUM_THREADS=2": ({"OMP_NUM_THREADS": "2"}, {}),
    "MXNET_CPU_WORKER_NTHREADS=2": ({"MXNET_CPU_WORKER_NTHREADS": "2"}, {}),
    "MXNET_ENGINE_TYPE=NaiveEngine": ({"MXNET_ENGINE_TYPE": "NaiveEngine"}, {}),
    "MXNET_MKLDNN_ENABLED=0 (no oneDNN)": ({"MXNET_MKLDNN_ENABLED": "0"}, {}),
    "not hybridized": ({}, {"hybridize": "none"}),
    "static_alloc + static_shape": ({}, {"hybridize": "static_shape"}),
    "batch 64": ({}, {"batch_size": 64}),
    "batch 256": ({}, {"batch_size": 256}),
    # Against the row "OMP_NUM_THREADS=2" (what gluon_cifar sets on this machine):
    "OMP_NUM_THREADS=2, numpy API (the book's network under npx.set_np)": ({"OMP_NUM_THREADS": "2"},
                                                                          {"numpy_api": True}),
    "OMP_NUM_THREADS=2, bfloat16 inference (submit.py --dtype bfloat16)": ({"OMP_NUM_THREADS": "2"},
                                                                          {"bfloat16": True}),
}


def measure(options: dict, batches: int) -> dict:
    """Runs inside the child process: images/s for training steps and for inference."""
    sys.path.insert(0, ROOT)
    import mxnet as mx
    from mxnet import autograd, gluon, nd

    from gluon_cifar.config import Config
    from gluon_cifar.training.optim import make_trainer
    from gluon_cifar.models import build_model

    batch_size = options.get("batch_size", 128)
    ctx = mx.cpu()
    labels = list(range(10)) * (batch_size // 10) + list(range(batch_size % 10))
    if options.get("numpy_api"):
        # The baseline's own ResNet-18 (the same layers), written for MXNet's numpy API: importing it
        # calls npx.set_np(), and its inputs are mx.np arrays.
        spec = importlib.util.spec_from_file_location("d2l_reference", BASELINE)
        book = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(book)
        mx.random.seed(0)
        net = book.get_net([ctx])
        data = mx.np.random.normal(size=(batch_size, 3, 32, 32), ctx=ctx)
        label = mx.np.array(labels, ctx=ctx)
    else:
        net = build_model("resnet18", 10, [ctx], seed=0)
        data = nd.random.normal(shape=(batch_size, 3, 32, 32), ctx=ctx)
        label = nd.array(labels, ctx=ctx)
    mode = options.get("hybridize", "static_alloc")
    if mode != "none":
        net.hybridize(static_alloc=True, static_shape=mode == "static_shape")
    trainer = make_trainer(net, Config())
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def train_step():
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(batch_size)
        return loss

    def timed(step, n):
        step().wait_to_read()  # warm-up: graph building, allocation
        start = time.perf_counter()
        for _ in range(n):
            out = step()
        out.wait_to_read()
        nd.waitall()
        return n * batch_size / (time.perf_counter() - start)

    train = timed(train_step, batches)
    if options.get("bfloat16"):
        from gluon_cifar.inference.predict import cast_for_inference
        net = cast_for_inference(net, "bfloat16", [ctx])
    infer = timed(lambda: net(data), batches * 2)
    return {"train": train, "infer": infer}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6, help="timed training batches per measurement")
    parser.add_argument("--only", nargs="*", default=None, help="names of SETTINGS to run (default: all)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(json.loads(args.child), args.batches)))
        return 0

    names = args.only or list(SETTINGS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            env, options = SETTINGS[name]
            out = subprocess.run([sys.executable, __file__, "--batches", str(args.batches), "--child",
                                  json.dumps(options)], env={**PRISTINE_ENV, **env}, capture_output=True, text=True,
                                 check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: {name}: {results[name][-1]}", file=sys.stderr, flush=True)

    base = statistics.median(x["train"] for x in results[names[0]])
    print("| setting | train img/s (median) | vs first row | inference img/s (median) | train GFLOP/s | inference GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        train = statistics.median(x["train"] for x in results[name])
        infer = statistics.median(x["infer"] for x in results[name])
        print(f"| {name} | {train:.1f} | {train / base:.2f} | {infer:.1f} | {train * 3 * FORWARD_GFLOP:.0f} | "
              f"{infer * FORWARD_GFLOP:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
