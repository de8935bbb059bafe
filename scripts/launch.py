#!/usr/bin/env python3
"""Run a training command as a distributed job on MXNet's parameter server (kvstore dist_sync).

The same as `gluon-cifar launch` once the package is installed; --help lists every flag.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gluon_cifar.commands import run  # noqa: E402

if __name__ == "__main__":
    run(["launch", *sys.argv[1:]], prog=os.path.basename(__file__))
