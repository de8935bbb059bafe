#!/usr/bin/env python3
"""Predict your own images (files, folders, globs) with a finished run: top classes and probabilities.

The same as `gluon-cifar predict` once the package is installed; --help lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar.commands import run  # noqa: E402

if __name__ == "__main__":
    run(["predict", *sys.argv[1:]], prog=os.path.basename(__file__))
