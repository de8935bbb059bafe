#!/usr/bin/env python3
"""Prediction in float32, bfloat16 and oneDNN int8 (MXNet's quantize_net, calibrated on training
images): speed and holdout accuracy of one trained run, on the same scored test images.

int8 becomes a `--precision` choice only if its holdout accuracy stays within 0.2 points of
float32 (issue 9). Each variant predicts the holdout once untimed (warm-up), then timed.

  python ../shared/tools/kaggle_layout.py /tmp/cifar --holdout 5000 --junk 295000
  python scripts/train.py --preset cpu-fast --data-dir /tmp/cifar --out runs/fast
  python benchmarks/int8.py --run runs/fast --answers /tmp/cifar.answers.csv
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from common import ROOT, machine

sys.path.insert(0, ROOT)

import gluon_cifar  # noqa: E402,F401  (first, before MXNet loads: it sets MXNet's threads and AMX)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mxnet.contrib.quantization import quantize_net_v2  # noqa: E402

from gluon_cifar import STARTUP  # noqa: E402
from gluon_cifar.data.source import resolve_data_dir  # noqa: E402
from gluon_cifar.inference.network import load_network  # noqa: E402
from gluon_cifar.data.folder import ImageFiles  # noqa: E402
from gluon_cifar.data.kaggle import read_train  # noqa: E402
from gluon_cifar.inference.predict import cast_for_inference  # noqa: E402
from gluon_cifar.runs import rundir  # noqa: E402
from gluon_cifar.inference.tta import predict_classes  # noqa: E402


def stacked(paths: list[str]) -> mx.nd.NDArray:
    files = ImageFiles(paths)  # the prediction transform: normalised float32, (3, 32, 32)
    return mx.nd.stack(*[files[i][0] for i in range(len(files))])


def predict(net, images: mx.nd.NDArray, tta: str, batch: int = 512) -> tuple[np.ndarray, float]:
    """Class indices and images/s (after one untimed pass)."""
    ctxs = [mx.cpu()]
    passes = []
    for _ in range(2):
        start = time.perf_counter()
        out = [predict_classes(net, images[i:i + batch], ctxs, tta)[0].asnumpy() for i in range(0, len(images), batch)]
        passes.append(time.perf_counter() - start)
    return np.concatenate(out).astype(np.int64), len(images) / passes[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--answers", required=True, help="kaggle_layout.py's OUT.answers.csv")
    parser.add_argument("--calibration", type=int, default=1024, help="training images to calibrate int8 on")
    args = parser.parse_args()
    cfg, classes = rundir.load(args.run)
    data_dir = resolve_data_dir(cfg)
    answers = pd.read_csv(args.answers)
    truth = np.array([classes.index(c) for c in answers["label"]])
    images = stacked([os.path.join(data_dir, "test", f"{i}.png") for i in answers["id"]])
    train = read_train(data_dir).paths
    calibration = stacked(train[::max(1, len(train) // args.calibration)][:args.calibration])

    net = load_network(cfg, classes, os.path.join(args.run, rundir.PARAMS), [mx.cpu()])
    variants = {"float32": net, "bfloat16": cast_for_inference(
        load_network(cfg, classes, os.path.join(args.run, rundir.PARAMS), [mx.cpu()]), "bfloat16", [mx.cpu()])}
    for mode in ("naive", "entropy"):
        fp32 = load_network(cfg, classes, os.path.join(args.run, rundir.PARAMS), [mx.cpu()])
        try:
            variants[f"int8 ({mode} calibration)"] = quantize_net_v2(
                fp32, quantized_dtype="auto", calib_mode=mode, calib_data=mx.io.NDArrayIter(calibration, batch_size=64),
                num_calib_examples=len(calibration), ctx=mx.cpu(), logger=logging.getLogger("quantize"))
        except Exception as exc:  # report what MXNet could not quantize instead of stopping the table
            print(f"int8 ({mode}): quantize_net failed: {str(exc).splitlines()[0][:300]}", file=sys.stderr)

    print(f"`python benchmarks/int8.py --run {args.run} --answers {args.answers}` ({cfg.model}, TTA {cfg.tta}, "
          f"{len(truth):,} scored holdout images, calibration on {len(calibration):,} training images), "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}; {machine()}; oneDNN ISA \"{STARTUP.isa}\"\n")
    print("| prediction | img/s | x float32 | holdout accuracy | points vs float32 |\n| --- | --- | --- | --- | --- |")
    base_rate = base_acc = None
    for name, variant in variants.items():
        predicted, rate = predict(variant, images, cfg.tta)
        accuracy = float((predicted == truth).mean())
        base_rate, base_acc = base_rate or rate, base_acc if base_acc is not None else accuracy
        print(f"| {name} | {rate:.0f} | {rate / base_rate:.2f} | {accuracy:.4f} | {100 * (accuracy - base_acc):+.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
