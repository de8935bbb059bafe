"""Write submission.csv (id,label for every image in DIR/test) from a finished training run.

examples:
  python scripts/submit.py --run runs/demo                       # predict with the run's network
  python scripts/submit.py --run runs/r1 --data-dir ~/cifar-10 --out submission.csv
  python scripts/submit.py --run runs/r1 --retrain               # the book's final step: retrain
                                                                 # on train+valid, then predict
  python scripts/submit.py --run runs/r1 --precision float32     # not bfloat16, even where it is faster
  python scripts/submit.py --run runs/r1 --tta flip-shift        # 6 test-time views instead of the run's
"""
from __future__ import annotations

import argparse

from .. import workflow
from ..config import TTAS, Config
from ..contexts import resolve_contexts
from ..runtime import PRECISIONS


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by scripts/train.py")
    parser.add_argument("--data-dir", default=None, help="Kaggle directory with test/ (default: the run's)")
    parser.add_argument("--out", default=None, help="submission path (default: RUN/submission.csv)")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain on train+valid with the run's settings before predicting")
    parser.add_argument("--batch-size", type=int, default=workflow.SUBMIT_BATCH,
                        help=f"prediction batch size (default: {workflow.SUBMIT_BATCH})")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding workers (default: the run's)")
    parser.add_argument("--precision", "--dtype", dest="precision", default="auto", choices=PRECISIONS,
                        help="auto: bfloat16 on CPUs that compute it natively (AVX512-BF16 or AMX: faster there, "
                             "a few predictions in a thousand change, docs/BENCHMARKS.md), else float32 "
                             "(default: auto; --dtype is the old name)")
    parser.add_argument("--tta", default=None, choices=TTAS,
                        help="test-time augmentation: none, flip (2 views: 2x the prediction time) or flip-shift "
                             "(6 views: 6x) (default: the run's --tta)")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids (default: CPU)")
    parser.add_argument("--cpus", type=int, default=1, help="CPU contexts to split batches over (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    devices = Config(gpus=args.gpus, cpus=args.cpus).validate()
    ctxs = resolve_contexts(devices.gpu_ids(), devices.cpus)
    result = workflow.submit(args.run, ctxs, out=args.out, data_dir=args.data_dir, retrain=args.retrain,
                             batch_size=args.batch_size, num_workers=args.num_workers,
                             show_progress=not args.no_progress, precision=args.precision, tta=args.tta)
    print(f"wrote {result.path} ({result.rows} rows, parameters {result.params})")
    return 0
