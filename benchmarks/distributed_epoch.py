#!/usr/bin/env python3
"""One training epoch in one process vs the same epoch as a dist_sync job (N workers + 1 server).

Both sides run scripts/train.py for one epoch of the same global batch on the same data,
alternating over rounds so that machine noise hits both alike. Throughput is the epoch's
training examples (all workers together) per second of the epoch's training time, read from
metrics.csv (rank 0's for the distributed job: the workers step in lockstep).

example:
  python benchmarks/distributed_epoch.py --data-dir /work/data/bench3k --workers 2 --rounds 2
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, os.path.join(ROOT, "scripts", "train.py")]
LAUNCH = [sys.executable, os.path.join(ROOT, "scripts", "launch.py")]


def epoch_rate(command: list[str], out: str, workers: int) -> float:
    subprocess.run(command, check=True, capture_output=True, text=True)
    row = pd.read_csv(os.path.join(out, "metrics.csv")).iloc[-1]
    return row["examples"] * workers / row["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=1, help="loader processes per training process")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        common = ["--data-dir", args.data_dir, "--model", args.model, "--epochs", "1", "--batch-size",
                  str(args.batch_size), "--num-workers", str(args.num_workers), "--no-progress",
                  "--cache-dir", os.path.join(scratch, "cache")]
        for r in range(1, args.rounds + 1):
            single_out, dist_out = os.path.join(scratch, f"single{r}"), os.path.join(scratch, f"dist{r}")
            single = epoch_rate([*TRAIN, *common, "--out", single_out], single_out, 1)
            dist = epoch_rate([*LAUNCH, "-n", str(args.workers), "-s", "1", "--", *TRAIN, *common,
                               "--kvstore", "dist_sync", "--out", dist_out], dist_out, args.workers)
            rows.append((r, single, dist, dist / single))
            print(f"round {r}: single {single:.1f} img/s, {args.workers}-worker dist_sync {dist:.1f} img/s", flush=True)

    print(f"\n| round | one process (img/s) | {args.workers} workers + 1 server, dist_sync (img/s) | ratio |")
    print("| --- | --- | --- | --- |")
    for r, single, dist, ratio in rows:
        print(f"| {r} | {single:.1f} | {dist:.1f} | {ratio:.2f} |")
    print(f"\nmedian ratio (distributed / single): {statistics.median(r[3] for r in rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
