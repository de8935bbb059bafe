"""Train the book's ResNet-18 on a Kaggle CIFAR-10 directory and leave a run directory behind.

examples:
  python scripts/train.py --demo                         # offline demo data, 3 epochs
  python scripts/train.py --data-dir ~/cifar-10          # the book's recipe, 20 epochs, CPU
  python scripts/train.py --data-dir ~/cifar-10 --gpus 0,1 --num-workers 8
  python scripts/train.py --data-dir ~/cifar-10 --cpus 2 --epochs 1 --out runs/try
  python scripts/train.py --resume runs/try               # continue after a crash or Ctrl-C
  python scripts/train.py --resume runs/try --epochs 30   # or train an ended run for longer
  python scripts/train.py --config runs/try/config.json --out runs/again   # a new run with runs/try's settings
  python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --kvstore dist_sync --out runs/dist
"""
from __future__ import annotations

import argparse
import os

from .. import workflow
from ..config import RESUMABLE, Config
from ..contexts import resolve_contexts
from ..errors import DiskFull, Interrupted, Terminated
from ..flags import add_config_arguments, config_from_args, config_overrides
from ..presets import PRESETS
from ..runs import rundir
from ..settings import flag
from ..training.records import EpochResult
from ..training.run_plan import RunPlan


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--demo", action="store_true", help="train on the built-in offline demo dataset (made on "
                                                         "first use) with the demo preset; without it --data-dir "
                                                         "is required, so a forgotten --data-dir never trains on "
                                                         "synthetic images by mistake")
    run.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help="settings to start from before flags apply (default: d2l; demo with --demo)")
    run.add_argument("--out", default=None, help="run directory (default: runs/<timestamp>)")
    run.add_argument("--resume", metavar="RUN", default=None,
                     help="continue RUN from its last checkpoint with its own settings; only "
                          f"{', '.join('--' + flag(k) for k in RESUMABLE)} may be changed")
    run.add_argument("--config", metavar="CONFIG_JSON", default=None,
                     help="start a new run (--out required) with the settings of a run's config.json (or run "
                          "directory), flags given as well overriding them; its epochs as it ran them, so that "
                          "with nothing overridden it trains the same bits on the same machine and data")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    parser.add_argument("--amp", action="store_true", help="deprecated: the old name of --precision float16")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = get_args_parser(prog)
    args = parser.parse_args(argv)
    if args.demo and args.data_dir:
        parser.error("--demo and --data-dir exclude each other")
    if args.amp and args.precision not in (None, "float16"):
        parser.error(f"--amp is --precision float16: it contradicts --precision {args.precision}")
    if args.config and args.resume:
        parser.error("--config starts a new run, --resume continues one: give one of them")
    if not (args.demo or args.data_dir or args.resume or args.config):
        parser.error("give --data-dir DIR (the Kaggle CIFAR-10 download) or --demo (the built-in offline demo data)")
    out = args.resume or args.out or rundir.default_run_dir()
    try:
        if args.resume:
            if args.out or args.preset or args.demo:
                parser.error("--resume continues RUN in place with its own settings: drop --out, --preset and --demo")
            if args.amp:
                parser.error("--resume keeps the run's precision: drop --amp")
            cfg, plan = workflow.resume_config(out, config_overrides(args))
            trained = workflow.resume(out, cfg, plan, resolve_contexts(cfg.gpu_ids(), cfg.cpus), not args.no_progress)
        elif args.config:
            if not args.out or args.preset or args.demo:
                parser.error("--config starts a new run with a saved run's settings: give --out (a new directory), "
                             "and no --preset or --demo")
            cfg, plan = repeat_config(args)
            trained = workflow.train(cfg, resolve_contexts(cfg.gpu_ids(), cfg.cpus), out, not args.no_progress, plan)
        else:
            cfg = config_from_args(args, args.preset or ("demo" if args.demo else "d2l"))
            trained = workflow.train(cfg, resolve_contexts(cfg.gpu_ids(), cfg.cpus), out, not args.no_progress)
    except DiskFull as exc:  # where the run goes on from depends on whether a checkpoint was kept
        kept = (f"continue with: python scripts/train.py --resume {out}" if rundir.has_checkpoint(out)
                else "no checkpoint was kept: start the run again")
        raise DiskFull(f"{exc}; {kept}") from None
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        if rundir.has_checkpoint(out):
            raise Interrupted(f"continue with: python scripts/train.py --resume {out}", terminated) from None
        raise Interrupted("before the first checkpoint: nothing was kept; start again", terminated) from None
    if trained.wrote:  # distributed workers other than rank 0 write nothing, and say nothing here
        print(summary(trained.history, out, trained.epochs))
    return 0


def repeat_config(args: argparse.Namespace) -> tuple[Config, RunPlan | None]:
    """The saved run's settings under the flags given, and its plan: with nothing overridden it is the same
    run, its length (and the changes a time budget made to it on the way), views and recipe repeated, nothing
    planned again. With --epochs or --time-budget given, the run's recipe at that length: planned afresh."""
    path = os.path.join(args.config, rundir.CONFIG) if os.path.isdir(args.config) else args.config
    asked, plan = rundir.saved_run(path)
    if args.epochs is not None or args.time_budget:
        return config_from_args(args, "d2l", base=plan.recipe_of(asked).to_dict()), None  # its recipe, another length
    return config_from_args(args, "d2l", base=asked.to_dict()), plan


def summary(history: list[EpochResult], out: str, epochs: float | None = None) -> str:
    """The end of a run `epochs` long (default: its last epoch's number) in a few lines: its result, its
    files, and the next command."""
    last = history[-1]
    result = (f"valid acc {last.valid_acc:.4f}" if last.valid_acc is not None
              else f"train acc {last.train_acc:.4f} (no validation: --valid-ratio 0)")
    files = "".join(f"\n  {os.path.join(out, name)}" for name in sorted(os.listdir(out)))
    return (f"\n{result} after {last.epoch if epochs is None else epochs:g} epochs. Run directory {out}:{files}\n"
            f"next: python scripts/submit.py --run {out}   (or scripts/export.py {out} --format onnx)")
