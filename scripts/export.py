#!/usr/bin/env python3
"""Export a trained run's network as an MXNet symbol + params or as ONNX, checked on real images.

The same as `gluon-cifar export` once the package is installed; --help lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar.commands import run  # noqa: E402

if __name__ == "__main__":
    run(["export", *sys.argv[1:]], prog=os.path.basename(__file__))
