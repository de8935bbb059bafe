#!/usr/bin/env python3
"""Write submission.csv (id,label for every image in DIR/test) from a finished training run.

The same as `gluon-cifar submit` once the package is installed; --help lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar.commands import run  # noqa: E402

if __name__ == "__main__":
    run(["submit", *sys.argv[1:]], prog=os.path.basename(__file__))
