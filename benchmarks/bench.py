#!/usr/bin/env python3
"""gluon_cifar vs the book's MXNet pipeline (../shared/baseline/d2l_reference.py, unchanged), in one run.

Measures, and writes into docs/BENCHMARKS.md with this command, the machine and the date:
  1. data preparation on DATA_DIR (all its files): our linked split tree vs the book's copies;
  2. decoding the training images once into the decoded loader's cache (cold);
  3. ResNet-18 training end to end, same batch size and batches: the book's script, ours with
     the decoded loader, ours with the per-image folder loader, and ours on batches already in
     memory (the compute-only ceiling), alternating within each round so noise hits all alike;
  4. each of our training loaders alone, the model removed;
  5. prediction over the first --predict-images test images: the book's predict loop vs ours in
     float32 and bfloat16, images/s and peak resident memory of the whole process tree,
     alternating within each round;
  6. with --full-predict, ours over all of DATA_DIR/test (300,000 images on Kaggle's layout).
Every process of the book's script runs on a hard-linked scratch layout (it writes copies into the
directory it is given); our caches live in scratch too, so every run starts cold.

example (the full Kaggle-size layout; about 40 minutes on 2 cores):
  python ../shared/tools/kaggle_layout.py /tmp/cifar --holdout 5000 --junk 295000
  python benchmarks/bench.py --data-dir /tmp/cifar --full-predict
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import shutil
import statistics
import sys
import tempfile

from common import BASELINE, ROOT, Measured, machine, prefix_layout, run_measured

import data_prep  # after common: see common.PRISTINE_ENV

BEGIN, END = "<!-- bench.py: begin -->", "<!-- bench.py: end -->"
GB = 2**30


def probe(what: str, layout: str, cache: str, *options: str) -> tuple[float, Measured]:
    result = run_measured([sys.executable, os.path.join(ROOT, "benchmarks", "probes.py"), what, layout, *options],
                          env={"GLUON_CIFAR_CACHE": cache})
    return float(result.stdout.strip().splitlines()[-1]), result


def baseline(layout: str, *options: str, threads: int | None = None) -> tuple[float, Measured]:
    """Run the book's script; the rate it prints itself (its reorganisation left out).

    `threads`: set MXNET_OMP_MAX_THREADS (MXNet's default uses half the cores; see gluon_cifar/cores.py).
    """
    result = run_measured([sys.executable, BASELINE, layout, *options],
                          env={"MXNET_OMP_MAX_THREADS": str(threads)} if threads else None)
    pattern = r"predict examples/sec ([\d.]+)" if "predict" in options else r"([\d.]+) examples/sec"
    return float(re.search(pattern, result.stdout).group(1)), result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="a Kaggle layout, e.g. from kaggle_layout.py")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of training and prediction (default: 2)")
    p.add_argument("--train-batches", type=int, default=15, help="batches each side trains per round (default: 15)")
    p.add_argument("--loader-batches", type=int, default=150, help="batches the loaders alone produce (default: 150)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128, the book's)")
    p.add_argument("--predict-images", type=int, default=10000,
                   help="test images both sides predict in each round (default: 10000)")
    p.add_argument("--full-predict", action="store_true", help="also time ours over all of DATA_DIR/test")
    p.add_argument("--baseline-threads", type=int, default=None,
                   help="also train the baseline with MXNET_OMP_MAX_THREADS=N: how much is left once its "
                        "thread count is fixed by hand")
    p.add_argument("--num-workers", type=int, default=2, help="our loader processes (default: 2)")
    p.add_argument("--write", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"),
                   help="markdown file to put the results in, between bench.py markers (default: %(default)s)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args()
    command = "python benchmarks/bench.py " + " ".join(sys.argv[1:])

    scratch = tempfile.mkdtemp(prefix="gluon_cifar_bench_", dir=os.path.dirname(os.path.abspath(args.data_dir)))
    try:
        report = run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    stamp = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    text = f"Command: `{command}`\n\nMachine: {machine()}. Date: {stamp}.\n\n{report}"
    print(text)
    if not args.no_write:
        write_between_markers(args.write, text)
        print(f"\nwritten into {args.write}")
    return 0


def run(args: argparse.Namespace, scratch: str) -> str:
    layout = prefix_layout(args.data_dir, os.path.join(scratch, "layout"), args.predict_images)
    cache = os.path.join(scratch, "cache")
    workers = ["--num-workers", str(args.num_workers)]
    sys.path.insert(0, ROOT)
    from gluon_cifar import STARTUP  # (after common: see common.PRISTINE_ENV)
    dtypes = ("float32", "bfloat16") if STARTUP.bf16_kernels else ("float32",)  # bfloat16 needs AVX-512
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    log("data preparation on the full layout ...")
    prep = data_prep.measure(args.data_dir)
    decode_seconds, _ = probe("decode", layout, cache, *workers)
    decoded_bytes = sum(os.path.getsize(os.path.join(cache, "decoded", f))
                        for f in os.listdir(os.path.join(cache, "decoded")) if f.endswith(".npy"))

    train_opts = ["--batches", str(args.train_batches), "--batch-size", str(args.batch_size), *workers]
    training: list[dict[str, float]] = []
    for r in range(1, args.rounds + 1):
        log(f"training, round {r} of {args.rounds} ...")
        book = ["--mode", "train", "--epochs", "1", "--batch", str(args.batch_size), "--max-batches",
                str(args.train_batches)]
        row = {"baseline": baseline(layout, *book)[0]}
        if args.baseline_threads:
            row["baseline_threads"] = baseline(layout, *book, threads=args.baseline_threads)[0]
        for kind in ("decoded", "folder"):
            row[kind] = probe("train", layout, cache, "--loader", kind, *train_opts)[0]
        row["compute"] = probe("train", layout, cache, "--loader", "memory", *train_opts)[0]
        training.append(row)
        log(f"  {row}")

    loader_opts = ["--batches", str(args.loader_batches), "--batch-size", str(args.batch_size), *workers]
    loaders = {kind: probe("loader", layout, cache, "--loader", kind, *loader_opts)[0] for kind in ("decoded", "folder")}

    predicting: list[dict[str, tuple[float, int]]] = []
    for r in range(1, args.rounds + 1):
        log(f"prediction over {args.predict_images} images, round {r} of {args.rounds} ...")
        rate, run_ = baseline(layout, "--mode", "predict", "--batch", str(args.batch_size))
        row = {"baseline": (rate, run_.peak_memory)}
        for dtype in dtypes:
            rate, run_ = probe("predict", layout, cache, "--dtype", dtype, "--batch-size", "512", *workers)
            row[dtype] = (rate, run_.peak_memory)
        predicting.append(row)
        log(f"  {row}")

    full = None
    if args.full_predict:
        n_test = len(os.listdir(os.path.join(args.data_dir, "test")))
        log(f"prediction over all {n_test:,} test images ({dtypes[-1]}) ...")
        rate, run_ = probe("predict", args.data_dir, cache, "--dtype", dtypes[-1], "--batch-size", "512", *workers)
        full = (n_test, dtypes[-1], rate, run_)
    return render(args, prep, decode_seconds, decoded_bytes, training, loaders, predicting, full)


def _median(rows: list[dict], key: str, index: int | None = None) -> float:
    """The median of `key` over `rows`; NaN where no row has it (bfloat16 on a CPU without AVX-512)."""
    values = [row[key] if index is None else row[key][index] for row in rows if key in row]
    return statistics.median(values) if values else math.nan


def render(args, prep, decode_seconds, decoded_bytes, training, loaders, predicting, full) -> str:
    base_train, decoded, folder, compute = (_median(training, k) for k in ("baseline", "decoded", "folder", "compute"))
    base_pred, fp32, bf16 = (_median(predicting, k, 0) for k in ("baseline", "float32", "bfloat16"))
    base_mem, fp32_mem, bf16_mem = (max((row[k][1] for row in predicting if k in row), default=math.nan)
                                    for k in ("baseline", "float32", "bfloat16"))
    prep_ratio = prep.base_seconds / prep.our_seconds
    lines = [
        "| measurement | gluon_cifar | d2l baseline | ratio | target |", "| --- | --- | --- | --- | --- |",
        f"| training end to end, decoded loader (the default), img/s | {decoded:.1f} | {base_train:.1f} "
        f"| **{decoded / base_train:.2f}x** | >= 2x |",
        f"| training end to end, folder loader (the book's per-image pipeline), img/s | {folder:.1f} "
        f"| {base_train:.1f} | {folder / base_train:.2f}x | |",
        *([f"| training end to end, decoded loader vs the baseline run with MXNET_OMP_MAX_THREADS="
           f"{args.baseline_threads}, img/s | {decoded:.1f} | {_median(training, 'baseline_threads'):.1f} "
           f"| {decoded / _median(training, 'baseline_threads'):.2f}x | |"] if args.baseline_threads else []),
        f"| training on batches already in memory (compute-only ceiling), img/s | {compute:.1f} | | "
        f"decoded loader reaches {decoded / compute:.0%} of it | |",
        f"| decoded loader alone (model removed), img/s | {loaders['decoded']:.0f} | | "
        f"**{loaders['decoded'] / decoded:.0f}x** our training rate | >= 20x |",
        f"| folder loader alone ({args.num_workers} workers), img/s | {loaders['folder']:.0f} | | "
        f"{loaders['folder'] / decoded:.0f}x our training rate | |",
        f"| prediction, float32, img/s ({args.predict_images:,} images) | {fp32:.1f} | {base_pred:.1f} "
        f"| {fp32 / base_pred:.2f}x | |",
        f"| prediction, bfloat16 (`submit.py --dtype bfloat16`), img/s | {bf16:.1f} | {base_pred:.1f} "
        f"| **{bf16 / base_pred:.2f}x** | >= 3x |" if not math.isnan(bf16) else
        "| prediction, bfloat16 (`submit.py --dtype bfloat16`) | n/a: this CPU has no AVX-512 | | | |",
        f"| prediction, peak memory (PSS of the process tree) | {fp32_mem / GB:.2f} GB float32, {bf16_mem / GB:.2f} GB "
        f"bfloat16 | {base_mem / GB:.2f} GB | | < 2 GB |",
    ]
    if full:
        n_test, dtype, rate, run_ = full
        lines.append(f"| prediction over all {n_test:,} test images, {dtype}: img/s, wall (with start-up), peak memory "
                     f"| {rate:.1f} img/s, {run_.seconds:.0f} s, **{run_.peak_memory / GB:.2f} GB** | | | < 2 GB |")
    lines += [
        f"| data preparation, full layout: seconds | {prep.our_seconds:.1f} | {prep.base_seconds:.1f} "
        f"| **{prep_ratio:.1f}x** | >= 10x |",
        f"| data preparation: image files / bytes written | {prep.our_files:,} links / {prep.our_bytes:,} B "
        f"| {prep.base_files:,} copies / {prep.base_bytes:,} B | | no image bytes copied |",
        f"| decoded loader's one-time decode of the training images (cold) | {decode_seconds:.1f} s, "
        f"{decoded_bytes / 2**20:.0f} MB of pixels | | with it: {prep.base_seconds / (prep.our_seconds + decode_seconds):.1f}x "
        "| |",
        "", "Rounds (images/s):", "",
        "| round | training: baseline | decoded | folder | in memory | prediction: baseline | float32 | bfloat16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r, (t, pr) in enumerate(zip(training, predicting), 1):
        lines.append(f"| {r} | {t['baseline']:.1f} | {t['decoded']:.1f} | {t['folder']:.1f} | {t['compute']:.1f} "
                     f"| {pr['baseline'][0]:.1f} | {pr['float32'][0]:.1f} | {pr.get('bfloat16', (math.nan,))[0]:.1f} |")
    lines += ["", f"Training: {args.train_batches} batches of {args.batch_size} per side per round; the baseline's "
              "rates are the ones it prints (its reorganisation and validation left out, as ours leave out "
              "start-up). Prediction: untrained ResNet-18 on both sides (the baseline's predict mode), ours "
              "with batch 512 and the baseline with its 128; memory: the peak of the proportional set size (PSS) summed over each process and its loader "
              "workers, sampled every 0.5 s."]
    return "\n".join(lines)


def write_between_markers(path: str, text: str) -> None:
    """Replace what lies between the bench.py markers in `path` (append a section if there are none)."""
    sys.path.insert(0, ROOT)
    from gluon_cifar.atomic import write_text
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n## Issue-3 benchmark (benchmarks/bench.py)\n\n" + block + "\n"
    write_text(path, new)


if __name__ == "__main__":
    sys.exit(main())
