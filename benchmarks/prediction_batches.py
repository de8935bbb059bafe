#!/usr/bin/env python3
"""When each batch of a prediction pass ends: a time budget's sample of the test images against a longer pass.

A network built and cast as submit.py builds one (untrained: the arithmetic is the same), submit.py's batch size,
2 decoding workers; per view setting, a one-batch warm-up, then passes over samples spread over the test folder as
the budget takes them (workflow/predict_timing.py), then one over the folder's first `--full` images. Prints each
pass's seconds, its mean rate, and the rate from the end of its first batch on, to see what the sample's rate
says about a long pass:

  python benchmarks/prediction_batches.py --data-dir SCORED --full 5000 --samples 1024 1536
  python benchmarks/prediction_batches.py --data-dir HOLDOUT --model fastnet_wide --tta flip --full 30720 --samples 4096
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

from gluon_cifar import STARTUP  # noqa: E402
from gluon_cifar.data.kaggle import read_test  # noqa: E402
from gluon_cifar.inference.predict import cast_for_inference, predict_files  # noqa: E402
from gluon_cifar.models import build_model  # noqa: E402
from gluon_cifar.precision import decide  # noqa: E402
from gluon_cifar.submit_options import SubmitOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--tta", nargs="+", default=["flip", "flip-shift"])
    parser.add_argument("--samples", type=int, nargs="+", default=[1024])
    parser.add_argument("--full", type=int, default=5000, help="images of the long pass")
    args = parser.parse_args()
    ctxs = [mx.cpu()]
    net = build_model(args.model, 10, ctxs)
    net.hybridize(static_alloc=True)
    net = cast_for_inference(net, decide("auto", ["cpu"], STARTUP, "predict"), ctxs)
    _, paths = read_test(args.data_dir)
    batch = SubmitOptions.batch_size

    def timed(chosen: list[str], tta: str, label: str) -> None:
        ends: list[float] = []
        begun = time.perf_counter()
        predict_files(net, chosen, ctxs, batch, 2, tta=tta, on_batch=lambda n: ends.append(time.perf_counter() - begun))
        after = (len(chosen) - batch) / (ends[-1] - ends[0]) if len(ends) > 1 else float("nan")
        print(f"{label}, {tta}: {len(chosen)} images in {ends[-1]:.2f} s, {len(chosen) / ends[-1]:.0f} img/s; first "
              f"batch at {ends[0]:.2f} s, {after:.0f} img/s after it; batch ends {[round(e, 2) for e in ends[:12]]}")

    for tta in args.tta:
        timed(paths[:batch], tta, "warm-up")
        for sample in args.samples:
            timed(paths[::max(1, len(paths) // sample)][:sample], tta, f"sample of {sample}")
        timed(paths[:args.full], tta, "long pass")


if __name__ == "__main__":
    main()
