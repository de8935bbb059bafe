#!/usr/bin/env python3
"""The cost of a checked decode: Pillow (`images.decode_rgb`, what the package uses) vs OpenCV
through `mx.image.imread` (what it used before, which returns a black image for a PNG damaged
after its header), one process, the same files, alternating in chunks so drift hits both alike.

  python benchmarks/decode.py --data-dir /tmp/cifar --images 50000
"""
from __future__ import annotations

import argparse
import sys
import time

from common import ROOT, machine

sys.path.insert(0, ROOT)

import gluon_cifar  # noqa: E402,F401  (first, before MXNet loads: it sets MXNet's threads and AMX)
import mxnet as mx  # noqa: E402

from gluon_cifar.data.images import decode_rgb  # noqa: E402
from gluon_cifar.data.kaggle import read_test  # noqa: E402


def opencv(path: str):
    image = mx.image.imread(path, flag=1)
    image.wait_to_read()
    return image.asnumpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=50_000, help="test images to decode with each decoder")
    parser.add_argument("--chunk", type=int, default=5_000)
    args = parser.parse_args()
    _, paths = read_test(args.data_dir)
    paths = paths[:args.images]
    seconds = {"Pillow (checked)": 0.0, "OpenCV (mx.image.imread)": 0.0}
    decoders = {"Pillow (checked)": decode_rgb, "OpenCV (mx.image.imread)": opencv}
    for start in range(0, len(paths), args.chunk):
        chunk = paths[start:start + args.chunk]
        for name, decode in decoders.items():
            begin = time.perf_counter()
            for path in chunk:
                decode(path)
            seconds[name] += time.perf_counter() - begin
    print(f"`python benchmarks/decode.py --data-dir {args.data_dir} --images {len(paths)}`, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}; {machine()}; one process, files in the page cache\n")
    print("| decoder | img/s | x OpenCV |\n| --- | --- | --- |")
    base = len(paths) / seconds["OpenCV (mx.image.imread)"]
    for name, spent in seconds.items():
        print(f"| {name} | {len(paths) / spent:,.0f} | {len(paths) / spent / base:.2f} |")
    print(f"\n350,000 files (train + test) with Pillow on one core: {350_000 / (len(paths) / seconds['Pillow (checked)']):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
