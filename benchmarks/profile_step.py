#!/usr/bin/env python3
"""Where one steady-state cpu-fast training step spends its time, in MXNet (mx.profiler, aggregate).

The run's own pieces (preset cpu-fast: FastNet, batch 1024, the decoded loader with its
augmentation, Nesterov SGD, lookahead) on random uint8 images, so no data set is needed:
`--warmup` steps untimed, then `--steps` steps profiled. Prints MXNet's aggregate table (sorted
by total time) and a summary grouped like the peer's (benchmarks/profile_peer.py), as JSON on
the last line.

  python benchmarks/profile_step.py --precision bfloat16 --steps 10
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gluon_cifar  # noqa: E402  first, before MXNet loads: it sets the threads (runtime.py)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

# Operator name patterns -> the groups the peer's profile is summed into (first match wins).
GROUPS = [
    ("augmentation", r"GridGenerator|BilinearSampler|^Pad$|broadcast_div|broadcast_sub|^transpose$"),
    ("zero fills", r"_zeros|_full"),  # gradient buffers filled before a backward (the peer's aten::fill_)
    ("convolution backward", r"_backward_Convolution|_backward_FullyConnected"),
    ("convolution forward", r"^Convolution$|^FullyConnected$"),
    ("BatchNorm", r"BatchNorm"),
    ("casts", r"amp_cast|amp_multicast|Cast"),
    ("GELU", r"LeakyReLU|GELU|gelu"),
    ("pooling", r"Pooling"),
    ("optimizer update", r"nag_|sgd_|mom_update|multi_"),
    ("loss and metrics", r"log_softmax|pick|mean|argmax|sum|_equal|softmax|_mul_scalar|_rminus|elemwise|"
                         r"_plus|_minus|_mul|stack|one_hot"),
]


def group_of(name: str) -> str:
    for group, pattern in GROUPS:
        if re.search(pattern, name):
            return group
    return "other"


def parse_aggregate(text: str) -> dict[str, tuple[int, float]]:
    """{operator: (calls, total ms)} from the "operator" table of mx.profiler.dumps()."""
    ops: dict[str, tuple[int, float]] = {}
    lines = text.splitlines()
    section = ""
    for line, below in zip(lines, lines[1:] + [""]):
        if below.startswith("====="):
            section = line.strip()
            continue
        parts = line.split()
        if section != "operator" or len(parts) < 6 or not parts[-5].isdigit():
            continue
        name, calls, total = " ".join(parts[:-5]), int(parts[-5]), float(parts[-4])
        ops[name] = (calls, total)
    return ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="time the steps only (the profiler costs ~10%%)")
    parser.add_argument("--epoch", type=int, default=1, help="profile a step of this epoch (4: cpu-fast's whitening "
                                                              "bias frozen)")
    args = parser.parse_args()

    from gluon_cifar.config import Config
    from gluon_cifar.presets import PRESETS
    from gluon_cifar.data.augment import make_augment
    from gluon_cifar.data.batches import DecodedPart, DecodedTrainLoader
    from gluon_cifar.distributed.cluster import connect
    from gluon_cifar.training.engine import train_one_epoch
    from gluon_cifar.training.optim import enable_mixed_precision
    from gluon_cifar.training.parts import build_network, build_training

    cfg = Config.from_dict({**PRESETS["cpu-fast"], "batch_size": args.batch_size, "precision": args.precision})
    ctxs = [mx.cpu()]
    if args.precision == "bfloat16":
        enable_mixed_precision("bfloat16")
    steps = args.warmup + args.steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size * steps, 32, 32, 3), dtype=np.uint8)
    part = DecodedPart(images, np.arange(len(images)), rng.integers(0, 10, len(images)).astype(np.int32))
    loader = DecodedTrainLoader(part, args.batch_size, cfg.seed, make_augment(cfg.augment, cfg.seed), ctx=ctxs[0])
    sample = images[:5000].transpose(0, 3, 1, 2).astype(np.float32) / 255
    net = build_network(cfg, ctxs, 10, sample)
    parts = build_training(cfg, ctxs, connect(cfg.kvstore, ctxs), net, loader, None, args.precision)

    def fresh(first: int, count: int):
        """The loader's batches `first`..first+count, augmented as the run does (inside the step)."""
        loader.start_at(1, first)
        it = iter(loader)
        for _ in range(count):
            yield next(it)

    parts.start_epoch(args.epoch)
    train_one_epoch(parts, fresh(0, args.warmup), ctxs, sync_every=1 << 30)
    trace = os.path.join(tempfile.mkdtemp(), "profile.json")
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=trace)
    mx.profiler.set_state("stop" if args.no_profile else "run")
    start = time.perf_counter()
    train_one_epoch(parts, fresh(args.warmup, args.steps), ctxs, sync_every=1 << 30)  # reads the loss: waits
    wall = time.perf_counter() - start
    mx.profiler.set_state("stop")
    text = mx.profiler.dumps(reset=True)
    ops = parse_aggregate(text)
    top = sorted(ops.items(), key=lambda kv: -kv[1][1])[:args.top]
    print(f"{'operator':40s} {'calls/step':>10s} {'ms/step':>9s}")
    for name, (calls, total) in top:
        print(f"{name:40s} {calls / args.steps:10.1f} {total / args.steps:9.1f}")
    grouped: dict[str, float] = {}
    for name, (_, total) in ops.items():
        grouped[group_of(name)] = grouped.get(group_of(name), 0.0) + total / args.steps
    step_ms = 1e3 * wall / args.steps
    print(json.dumps({"framework": "mxnet " + mx.__version__, "precision": args.precision,
                      "batch": args.batch_size, "step_ms": round(step_ms, 1),
                      "img_per_s": round(args.batch_size / wall * args.steps, 1),
                      "operator_ms": {k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])},
                      "startup": gluon_cifar.STARTUP.as_record()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
