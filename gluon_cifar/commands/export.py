"""Export a trained run's network as an MXNet symbol + params or as ONNX, checked on real images.

The exported model is reloaded (gluon.SymbolBlock, or onnxruntime for ONNX) and run on the first
test images of the run's data; the check (max abs logit difference, same predicted classes) is
printed and written to OUT.check.json. Exit code 1 if the check fails.

examples:
  python scripts/export.py runs/demo --format mxnet                # runs/demo/export/model-symbol.json ...
  python scripts/export.py runs/demo --format onnx --out model.onnx
"""
from __future__ import annotations

import argparse
import os

import mxnet as mx

from ..atomic import refuse_inside, writable_dir
from ..data.layout import first_test_images
from ..data.source import resolve_data_dir
from ..errors import ConfigError
from ..inference.export import export_and_check, export_files
from ..inference.network import load_network
from ..runs import rundir
from ..workflow.outputs import check_output


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run directory written by scripts/train.py")
    parser.add_argument("--format", choices=["mxnet", "onnx"], required=True, help="what to export to")
    parser.add_argument("--out", default=None, help="for mxnet a file prefix (default: RUN/export/model), "
                                                    "for onnx a file (default: RUN/export/model.onnx)")
    parser.add_argument("--params", default=rundir.PARAMS,
                        help=f"parameter file in the run to export (default: {rundir.PARAMS})")
    parser.add_argument("--check-images", type=int, default=64,
                        help="real test images the check runs on (default: 64)")
    return parser


def load_for_export(run: str, params_name: str, n_images: int) -> tuple[mx.gluon.HybridBlock, mx.nd.NDArray]:
    """The run's network on the CPU and the first `n_images` test images of its data, transformed."""
    cfg, classes = rundir.load(run)
    params = rundir.trained_params(run) if params_name == rundir.PARAMS else os.path.join(run, params_name)
    if not os.path.isfile(params):
        raise ConfigError(f"{params} is missing: train the run first (or pass --params)")
    net = load_network(cfg, classes, params, [mx.cpu()])
    return net, first_test_images(resolve_data_dir(cfg), n_images)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    if args.check_images < 1:
        raise ConfigError(f"--check-images must be at least 1 (an export is only reported done once checked), "
                          f"got {args.check_images}")
    out = args.out or os.path.join(args.run, "export", "model" + (".onnx" if args.format == "onnx" else ""))
    if args.format == "mxnet" and (out.endswith(os.sep) or os.path.isdir(out)):
        out = os.path.join(out, "model")  # a folder: the prefix's files go inside it, not beside it
    data_dir, files = rundir.load(args.run)[0].data_dir, export_files(args.format, out)
    for path in files if data_dir else ():  # none in the data folder: not even the folder made for them
        refuse_inside(path, data_dir, "--out")
    writable_dir(os.path.dirname(os.path.abspath(out)), "the folder", f"choose another --out than {out}")
    for path in files:  # every file it will write, before the work (the data folder refused above)
        check_output(path, "--out", "model.onnx" if args.format == "onnx" else "model")
    net, images = load_for_export(args.run, args.params, args.check_images)
    check = export_and_check(net, args.format, out, images)
    verdict = "passed" if check.passed else "FAILED"
    print(f"exported {', '.join(check.files)}")
    print(f"check {verdict} on {check.images} real images: max abs logit difference {check.max_abs_diff:.3g} "
          f"(tolerance {check.tolerance:g}), same predicted classes: {check.same_classes}")
    return 0 if check.passed else 1
