#!/usr/bin/env python3
"""End-to-end ResNet-18 training throughput, gluon_cifar vs the book's pipeline, interleaved.

Both sides train the same number of batches of the same size from PNG files on disk (decoding,
augmentation, compute and synchronisation included), in alternating subprocesses so that machine
noise hits both alike. The baseline is ../shared/baseline/d2l_reference.py, unchanged, run on a
hard-linked scratch copy of DATA_DIR (it writes its copy-based reorganisation into the directory
it is given); its own "examples/sec" line is used, which excludes its reorganisation.

example:
  python benchmarks/train_throughput.py --data-dir /tmp/cifar-small --batches 20 --rounds 2
"""
import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "..", "shared", "baseline", "d2l_reference.py")


def ours(data_dir: str, batches: int, batch_size: int, num_workers: int) -> float:
    """Examples/s of gluon_cifar's training loop over `batches` batches (after the split tree exists)."""
    sys.path.insert(0, ROOT)
    import gluon_cifar  # noqa: F401  (first: it sets MXNet's thread count, which MXNet reads on import)
    import mxnet as mx
    from mxnet import gluon

    from gluon_cifar.config import Config
    from gluon_cifar.data import image_folder, train_loader
    from gluon_cifar.engine import make_trainer, train_one_epoch
    from gluon_cifar.model import build_model
    from gluon_cifar.transforms import train_transform
    from gluon_cifar.workflow import prepare_split

    cfg = Config(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers)
    tree = prepare_split(cfg, data_dir)
    ctxs = [mx.cpu()]
    loader = train_loader(image_folder(tree.folder("train"), train_transform()), batch_size, 0, num_workers)
    net = build_model("resnet18", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    trainer = make_trainer(net, cfg, len(loader))
    start = time.perf_counter()
    _, _, examples = train_one_epoch(net, itertools.islice(loader, batches), gluon.loss.SoftmaxCrossEntropyLoss(),
                                     trainer, ctxs)
    return examples / (time.perf_counter() - start)


def loader_alone(data_dir: str, batches: int, batch_size: int, num_workers: int) -> float:
    """Images/s of gluon_cifar's training loader with the model removed (decode + augment + batch)."""
    sys.path.insert(0, ROOT)
    from gluon_cifar.config import Config
    from gluon_cifar.data import image_folder, train_loader
    from gluon_cifar.transforms import train_transform
    from gluon_cifar.workflow import prepare_split

    tree = prepare_split(Config(data_dir=data_dir), data_dir)
    loader = train_loader(image_folder(tree.folder("train"), train_transform()), batch_size, 0, num_workers)
    start = time.perf_counter()
    images = sum(data.shape[0] for data, _ in itertools.islice(loader, batches))
    return images / (time.perf_counter() - start)


def run_ours(args, what: str = "--ours") -> float:
    out = subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, "--batches", str(args.batches),
                          "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers), what],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_baseline(args, scratch: str, threads: int | None = None) -> float:
    """The book's script as is; `threads`: the same with MXNET_OMP_MAX_THREADS set (a fairness check)."""
    env = {**os.environ, **({"MXNET_OMP_MAX_THREADS": str(threads)} if threads else {})}
    out = subprocess.run([sys.executable, BASELINE, scratch, "--mode", "train", "--epochs", "1",
                          "--batch", str(args.batch_size), "--max-batches", str(args.batches)],
                         capture_output=True, text=True, check=True, env=env)
    return float(re.search(r"([\d.]+) examples/sec", out.stdout).group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="Kaggle layout (kaggle_layout.py OUT --train N)")
    p.add_argument("--batches", type=int, default=20, help="batches each side trains per round (default: 20)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: 128, the book's)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    p.add_argument("--num-workers", type=int, default=2, help="gluon_cifar loader workers (default: 2)")
    p.add_argument("--baseline-threads", type=int, default=None,
                   help="also run the baseline with MXNET_OMP_MAX_THREADS=N (MXNet's default halves the cores)")
    p.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loader", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ours or args.loader:
        measure = ours if args.ours else loader_alone
        print(measure(args.data_dir, args.batches, args.batch_size, args.num_workers))
        return 0
    scratch = tempfile.mkdtemp(prefix="d2l_baseline_")
    shutil.rmtree(scratch)
    subprocess.run(["cp", "-al", args.data_dir, scratch], check=True)
    try:
        rows = []
        for r in range(1, args.rounds + 1):
            base, mine = run_baseline(args, scratch), run_ours(args)
            tuned = run_baseline(args, scratch, args.baseline_threads) if args.baseline_threads else None
            rows.append((r, mine, base, tuned))
            print(f"round {r}: gluon_cifar {mine:.1f} img/s, d2l baseline {base:.1f} img/s, ratio {mine / base:.2f}"
                  + (f"; baseline with {args.baseline_threads} threads {tuned:.1f} img/s" if tuned else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    extra = f" d2l baseline, MXNET_OMP_MAX_THREADS={args.baseline_threads} | ratio |" if args.baseline_threads else ""
    print(f"\n| round | gluon_cifar img/s | d2l baseline img/s | ratio |{extra}")
    print("|---|---|---|---|" + ("---|---|" if extra else ""))
    for r, mine, base, tuned in rows:
        print(f"| {r} | {mine:.1f} | {base:.1f} | {mine / base:.2f} |"
              + (f" {tuned:.1f} | {mine / tuned:.2f} |" if tuned else ""))
    print(f"median ratio {statistics.median(m / b for _, m, b, _ in rows):.2f}")
    loader = run_ours(args, "--loader")
    print(f"\ngluon_cifar's loader alone (model removed, {args.num_workers} workers): {loader:.1f} img/s, "
          f"{loader / statistics.median(m for _, m, _, _ in rows):.2f}x its training rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
