#!/usr/bin/env python3
"""Train the book's ResNet-18 on a Kaggle CIFAR-10 directory and leave a run directory behind.

examples:
  python scripts/train.py --demo                         # offline demo data, 3 epochs
  python scripts/train.py --data-dir ~/cifar-10          # the book's recipe, 20 epochs, CPU
  python scripts/train.py --data-dir ~/cifar-10 --gpus 0,1 --num-workers 8
  python scripts/train.py --data-dir ~/cifar-10 --cpus 2 --epochs 1 --out runs/try
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar import rundir, workflow  # noqa: E402
from gluon_cifar.cli import run_main  # noqa: E402
from gluon_cifar.config import PRESETS, add_config_arguments, config_from_args  # noqa: E402
from gluon_cifar.contexts import resolve_contexts  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--demo", action="store_true", help="use the built-in offline demo dataset "
                                                         "(also the default when no --data-dir is given)")
    run.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help="settings to start from before flags apply (default: d2l; demo with --demo)")
    run.add_argument("--out", default=None, help="run directory (default: runs/<timestamp>)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    return parser


def main() -> int:
    args = get_args_parser().parse_args()
    if args.demo and args.data_dir:
        get_args_parser().error("--demo and --data-dir exclude each other")
    demo = args.data_dir is None
    cfg = config_from_args(args, args.preset or ("demo" if demo else "d2l"))
    ctxs = resolve_contexts(cfg.gpu_ids(), cfg.cpus)
    out = args.out or rundir.default_run_dir()
    history = workflow.train(cfg, ctxs, out, show_progress=not args.no_progress)
    last = history[-1]
    print(f"\nvalid acc {last.valid_acc:.4f} after {last.epoch} epochs. Run directory {out}:")
    for name in sorted(os.listdir(out)):
        print(f"  {os.path.join(out, name)}")
    print(f"next: python scripts/submit.py --run {out}   (or scripts/export.py {out} --format onnx)")
    return 0


if __name__ == "__main__":
    run_main(main)
