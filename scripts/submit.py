#!/usr/bin/env python3
"""Write submission.csv (id,label for every image in DIR/test) from a finished training run.

examples:
  python scripts/submit.py --run runs/demo                       # predict with the run's network
  python scripts/submit.py --run runs/r1 --data-dir ~/cifar-10 --out submission.csv
  python scripts/submit.py --run runs/r1 --retrain               # the book's final step: retrain
                                                                 # on train+valid, then predict
  python scripts/submit.py --run runs/r1 --dtype bfloat16        # faster on CPUs with AVX512-BF16
  python scripts/submit.py --run runs/r1 --tta flip-shift        # 6 test-time views instead of the run's
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar import workflow  # noqa: E402
from gluon_cifar.cli import run_main  # noqa: E402
from gluon_cifar.config import TTAS, Config  # noqa: E402
from gluon_cifar.contexts import resolve_contexts  # noqa: E402
from gluon_cifar.predict import DTYPES  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by scripts/train.py")
    parser.add_argument("--data-dir", default=None, help="Kaggle directory with test/ (default: the run's)")
    parser.add_argument("--out", default=None, help="submission path (default: RUN/submission.csv)")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain on train+valid with the run's settings before predicting")
    parser.add_argument("--batch-size", type=int, default=512, help="prediction batch size (default: 512)")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding workers (default: the run's)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="compute in float32, or bfloat16 on CPUs (1.8x faster on CPUs with AVX512-BF16; "
                             "a few predictions in a thousand change) (default: float32)")
    parser.add_argument("--tta", default=None, choices=TTAS,
                        help="test-time augmentation: none, flip (2 views: 2x the prediction time) or flip-shift "
                             "(6 views: 6x) (default: the run's --tta)")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids (default: CPU)")
    parser.add_argument("--cpus", type=int, default=1, help="CPU contexts to split batches over (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main() -> int:
    args = get_args_parser().parse_args()
    devices = Config(gpus=args.gpus, cpus=args.cpus).validate()
    ctxs = resolve_contexts(devices.gpu_ids(), devices.cpus)
    result = workflow.submit(args.run, ctxs, out=args.out, data_dir=args.data_dir, retrain=args.retrain,
                             batch_size=args.batch_size, num_workers=args.num_workers,
                             show_progress=not args.no_progress, dtype=args.dtype, tta=args.tta)
    print(f"wrote {result.path} ({result.rows} rows, parameters {result.params})")
    return 0


if __name__ == "__main__":
    run_main(main)
