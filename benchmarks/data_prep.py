#!/usr/bin/env python3
"""Data preparation: gluon_cifar's linked split tree vs the book's copy-based reorganisation.

Both sides start from the same Kaggle layout. Ours reads and checks trainLabels.csv and every
training image's header, then builds the train/valid/train_valid tree of hard links in a fresh
cache. The book's script (`--mode reorg`, unchanged) copies every image, test/ included, into
DATA_DIR/train_valid_test; it runs on a hard-linked scratch copy of DATA_DIR so the data
directory stays untouched. "Bytes written" counts the bytes of files whose inode is not one of
the original images' (new data, not links), so hard links count zero.

example:
  python benchmarks/data_prep.py --data-dir /work/data/full
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from common import BASELINE, PRISTINE_ENV, ROOT


def inodes(*folders: str) -> set[tuple[int, int]]:
    seen = set()
    for folder in folders:
        with os.scandir(folder) as entries:
            seen.update((e.stat().st_dev, e.stat().st_ino) for e in entries if e.is_file())
    return seen


def new_bytes(tree: str, originals: set[tuple[int, int]]) -> tuple[int, int]:
    """(bytes of image files that are not links to `originals`, number of image files) under `tree`."""
    total, files = 0, 0
    for folder, _, names in os.walk(tree):
        for name in names:
            if not name.lower().endswith((".png", ".jpg", ".jpeg")):
                continue  # e.g. our manifest.json
            info = os.lstat(os.path.join(folder, name))
            files += 1
            if not os.path.islink(os.path.join(folder, name)) and (info.st_dev, info.st_ino) not in originals:
                total += info.st_size
    return total, files


def ours(data_dir: str, cache: str) -> tuple[float, str]:
    sys.path.insert(0, ROOT)
    from gluon_cifar.config import Config
    from gluon_cifar.data.source import open_training_data

    start = time.perf_counter()
    tree = open_training_data(Config(data_dir=data_dir, cache_dir=cache), "train", False, data_dir).tree
    return time.perf_counter() - start, tree.root


@dataclass
class PrepResult:
    our_seconds: float
    our_files: int
    our_bytes: int
    base_seconds: float
    base_files: int
    base_bytes: int
    base_timing: str  # where base_seconds comes from


def measure(data_dir: str) -> PrepResult:
    originals = inodes(os.path.join(data_dir, "train"), os.path.join(data_dir, "test"))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(data_dir))) as scratch:
        our_seconds, tree = ours(data_dir, os.path.join(scratch, "cache"))
        our_bytes, our_files = new_bytes(tree, originals)

        copy = os.path.join(scratch, "baseline")
        subprocess.run(["cp", "-al", data_dir, copy], check=True)  # links: the baseline's input, not timed
        start = time.perf_counter()
        out = subprocess.run([sys.executable, BASELINE, copy, "--mode", "reorg"], capture_output=True, text=True,
                             check=True, env=PRISTINE_ENV).stdout
        base_seconds = time.perf_counter() - start
        reported = re.search(r"reorg[^\d]*([\d.]+)", out)
        base_bytes, base_files = new_bytes(os.path.join(copy, "train_valid_test"), originals)
    if reported:  # its own timing of the reorganisation excludes Python and MXNet start-up, as ours does
        return PrepResult(our_seconds, our_files, our_bytes, float(reported.group(1)), base_files, base_bytes,
                          "as it reports it")
    return PrepResult(our_seconds, our_files, our_bytes, base_seconds, base_files, base_bytes, "process wall time")


def table(r: PrepResult) -> str:
    return "\n".join([
        "| | seconds | image files written | image bytes written |", "| --- | --- | --- | --- |",
        f"| gluon_cifar (read + check headers + link tree) | {r.our_seconds:.1f} | {r.our_files:,} links "
        f"| {r.our_bytes:,} |",
        f"| d2l baseline reorg ({r.base_timing}) | {r.base_seconds:.1f} | {r.base_files:,} copies | {r.base_bytes:,} |",
        "", f"ratio (baseline / ours): {r.base_seconds / r.our_seconds:.1f}x faster"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    print(table(measure(parser.parse_args().data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
