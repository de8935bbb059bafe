"""Write submission.csv (id,label for every image in DIR/test) from a finished training run.

examples:
  python scripts/submit.py --run runs/demo                       # predict with the run's network
  python scripts/submit.py --run runs/r1 --data-dir ~/cifar-10 --out submission.csv
  python scripts/submit.py --run runs/r1 --retrain               # the book's final step: retrain
                                                                 # on train+valid, then predict
  python scripts/submit.py --run runs/r1 --precision float32     # not bfloat16, even where it is faster
  python scripts/submit.py --run runs/r1 --tta flip-shift        # 6 test-time views instead of the run's
  python scripts/submit.py --run runs/s0 --run runs/s1 --out ens.csv   # an ensemble: probabilities averaged
"""
from __future__ import annotations

import argparse

from .. import workflow
from ..contexts import resolve_contexts
from ..flags import add_config_arguments, config_overrides
from ..submit_options import SubmitOptions


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, settings=SubmitOptions)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    options = SubmitOptions(**config_overrides(args, SubmitOptions))
    result = workflow.submit(options, resolve_contexts(options.gpu_ids(), options.cpus), not args.no_progress)
    print(f"wrote {result.path} ({result.rows} rows, parameters {', '.join(result.params)})"
          + (f"; the ensemble is described in {result.record}" if result.record else ""))
    return 0
