#!/usr/bin/env python3
"""cpu-fast's training speed against the peer's (airbench94 in PyTorch on the CPU), in one run.

Both train FastNet (airbench94's network) on the same number of real CIFAR-10 images for the same
whole epochs, each with its own recipe (the peer: batches of 1024, SGD; cpu-fast: batches of 2000,
Muon; --preset cpu-fast-sgd: the peer's), one process at a time, rounds alternating so that a
drifting machine hits both alike:
  ours:  scripts/train.py --preset PRESET --epochs E --valid-ratio 0 --precision P on a Kaggle
         layout of N training images (made with ../shared/tools/kaggle_layout.py if not given);
  peer:  ../shared/tools/airbench_cpu.py --epochs E --limit-train N --no-epoch-eval --dtype D,
         in its own venv (--peer-python: torch, numpy and Pillow; never this project's venv).
Each side's rate is its images/s over all epochs but the first (start-up and oneDNN's primitive
creation); the table gives the median over rounds and the ratio ours/peer of each round. The CPU
(family, AMX) is printed with it: bfloat16 speeds differ by machine.

  python benchmarks/peer.py --peer-python /opt/torch-venv/bin/python --rounds 2
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
import tempfile
import time

from common import LAYOUT_TOOL, PEER, ROOT, SHARED, machine, run_measured

TRAIN_ZIP = os.path.join(SHARED, "data", "cifar10_train_jpg.zip")


def ours(layout: str, work: str, epochs: int, precision: str, preset: str) -> dict:
    run = tempfile.mkdtemp(dir=work)
    os.rmdir(run)  # train.py makes it
    result = run_measured([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--preset", preset,
                           "--data-dir", layout, "--epochs", str(epochs), "--valid-ratio", "0", "--precision",
                           precision, "--cache-dir", os.path.join(work, "cache"), "--out", run, "--no-progress"])
    with open(os.path.join(run, "metrics.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
        used = json.load(f)["plan"]["precision"]
    return {"rates": [float(r["examples_per_sec"]) for r in rows], "seconds": result.seconds, "precision": used}


def peer(python: str, work: str, epochs: int, n_train: int, dtype: str) -> dict:
    result = run_measured([python, PEER, "--train-zip", TRAIN_ZIP, "--epochs", str(epochs), "--limit-train",
                           str(n_train), "--no-epoch-eval", "--dtype", dtype,
                           "--cache-dir", os.path.join(work, "peer-cache")])
    rates = [float(m) for m in re.findall(r"\| ([\d.]+) img/s \|", result.stdout)]
    return {"rates": rates, "seconds": result.seconds, "torch": re.search(r"torch (\S+)", result.stdout).group(1)}


def steady(rates: list[float]) -> float:
    """Images/s over every epoch but the first (equal epochs: the harmonic mean of their rates)."""
    later = rates[1:] or rates
    return len(later) / sum(1 / r for r in later)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="python of a venv with torch, numpy and Pillow")
    parser.add_argument("--layout", help="a Kaggle layout with exactly --train-images training images "
                                         "(default: made in the work folder)")
    parser.add_argument("--train-images", type=int, default=12288, help="images per epoch (12 batches of 1024)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="ours: --precision (auto: what cpu-fast uses on this machine)")
    parser.add_argument("--peer-dtype", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--preset", default="cpu-fast", choices=("cpu-fast", "cpu-fast-sgd"),
                        help="ours: the recipe (cpu-fast-sgd: the peer's own, batches of 1024)")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="peer-bench-")
    os.makedirs(work, exist_ok=True)
    layout = args.layout
    if layout is None:
        layout = os.path.join(work, "layout")
        if not os.path.isdir(layout):
            run_measured([sys.executable, LAYOUT_TOOL, layout, "--train", str(args.train_images), "--holdout", "10"])
    results: dict[str, list[dict]] = {"ours": [], "peer": []}
    for round_ in range(args.rounds):
        for side in ("ours", "peer") if round_ % 2 == 0 else ("peer", "ours"):
            if side == "ours":
                row = ours(layout, work, args.epochs, args.precision, args.preset)
            else:
                row = peer(args.peer_python, work, args.epochs, args.train_images, args.peer_dtype)
            results[side].append(row)
            print(f"round {round_ + 1} {side}: {', '.join(f'{r:.0f}' for r in row['rates'])} img/s per epoch",
                  file=sys.stderr, flush=True)
    ratios = [steady(o["rates"]) / steady(p["rates"]) for o, p in zip(results["ours"], results["peer"])]
    ours_rate = statistics.median(steady(o["rates"]) for o in results["ours"])
    peer_rate = statistics.median(steady(p["rates"]) for p in results["peer"])
    print(f"`python benchmarks/peer.py --rounds {args.rounds} --epochs {args.epochs} --train-images "
          f"{args.train_images} --precision {args.precision} --peer-dtype {args.peer_dtype} --preset {args.preset}`, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}; {machine()}\n")
    print("| | training images/s (epochs 2-%d, median of %d rounds) | ours / peer |" % (args.epochs, args.rounds))
    print("| --- | --- | --- |")
    print(f"| ours: {args.preset}, --precision {args.precision} ({results['ours'][0]['precision']}), MXNet | "
          f"{ours_rate:.0f} | **{statistics.median(ratios):.2f}x** (rounds: {', '.join(f'{r:.2f}' for r in ratios)}) |")
    print(f"| peer: airbench94, {args.peer_dtype}, torch {results['peer'][0]['torch']} | {peer_rate:.0f} | 1 |")
    print(json.dumps({"ours": results["ours"], "peer": results["peer"], "ratios": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
