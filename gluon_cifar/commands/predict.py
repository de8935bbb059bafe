"""Predict your own images with a finished run: files, folders (searched recursively) and glob patterns.

Any size and format Pillow reads: each image is made 32x32 the way CIFAR-10's were (shorter side to
32, centre crop). Prints the top classes with their probabilities, or writes them with --out (.csv or
.json). An image that cannot be read is named and skipped; the others are predicted, and the exit
code is 3 to say that something was skipped.

examples:
  python scripts/predict.py runs/fast cat.jpg                     # top 3 classes of one image
  python scripts/predict.py runs/fast photos/ --top-k 1 --out preds.csv
  python scripts/predict.py runs/fast 'shots/**/*.png' --out preds.json --tta none
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ..atomic import atomic_path
from ..contexts import resolve_contexts
from ..flags import add_config_arguments, config_overrides
from ..predict_options import PredictOptions
from ..runs import rundir
from ..workflow.outputs import check_output
from ..workflow.predict import predict

SKIPPED = 3  # the exit code when some images could not be read (the rest were predicted)


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run directory written by scripts/train.py")
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, folders, glob patterns")
    add_config_arguments(parser, settings=PredictOptions)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    options = PredictOptions(**config_overrides(args, PredictOptions)).validate()
    if options.out is not None:  # before the work
        check_output(options.out, "--out", "preds.csv", (rundir.load(args.run)[0].data_dir,))
    ctxs = resolve_contexts(options.gpu_ids(), options.cpus)
    table = predict(args.run, args.images, options.top_k, options.precision, options.tta, ctxs, options.batch_size,
                    not args.no_progress)
    skipped = int(table["error"].notna().sum())
    if options.out is None:
        _print(table.dropna(subset=["label"]), options.top_k)
    else:
        with atomic_path(options.out) as tmp:
            if options.out.endswith(".json"):
                table.to_json(tmp, orient="records", indent=1)
            else:
                table.to_csv(tmp, index=False)
        print(f"wrote {options.out}: {len(table) - skipped} images predicted")
    if skipped:
        print(f"{skipped} of {len(table)} images could not be read and were skipped (named above)", file=sys.stderr)
        return SKIPPED
    return 0


def _print(table: pd.DataFrame, top_k: int) -> None:
    """One line per image: its path, then its top classes with their probabilities."""
    ranks = [("label", "probability")] + [(f"label_{k}", f"probability_{k}") for k in range(2, top_k + 1)]
    for _, row in table.iterrows():
        print(f"{row['path']}: " + ", ".join(f"{row[label]} {row[p]:.3f}" for label, p in ranks))
