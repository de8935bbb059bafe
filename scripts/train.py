#!/usr/bin/env python3
"""Train the book's ResNet-18 on a Kaggle CIFAR-10 directory and leave a run directory behind.

The same as `gluon-cifar train` once the package is installed; --help lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar.commands import run  # noqa: E402

if __name__ == "__main__":
    run(["train", *sys.argv[1:]], prog=os.path.basename(__file__))
