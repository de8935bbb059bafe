#!/usr/bin/env python3
"""Training speed in float32 and bfloat16 (MXNet AMP), with and without AMX, on this machine.

Each cell is one process (AMP patches MXNet for a whole process) training on random data with the
package's own trainer and loop: `--warmup` steps not timed, then `--steps` timed. The cells of a
round run one after another and rounds alternate, so drifting machine speed hits every cell alike;
the table gives the median over rounds and each precision's ratio to float32 of the same round.
"Without AMX" caps oneDNN below AMX (DNNL_MAX_CPU_ISA=AVX512_CORE_BF16), as on a CPU without it;
on such a CPU there is only that column.

  python benchmarks/precision.py --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, machine

MODELS = {"fastnet": 512, "resnet18": 128}  # network: batch size (cpu-fast's FastNet as issue 9 measured it)
NO_AMX = {"DNNL_MAX_CPU_ISA": "AVX512_CORE_BF16"}


def probe(model: str, batch: int, precision: str, warmup: int, steps: int) -> dict:
    """In this process: images/s of `steps` training steps after `warmup`."""
    sys.path.insert(0, ROOT)
    import gluon_cifar  # first, before MXNet loads: it sets MXNet's threads and AMX (runtime.py)
    import mxnet as mx
    from gluon_cifar.config import Config
    from gluon_cifar.models import build_model
    from gluon_cifar.training.engine import train_one_epoch
    from gluon_cifar.training.optim import enable_mixed_precision, make_loss, make_trainer
    from gluon_cifar.training.parts import TrainingParts

    ctxs = [mx.cpu()]
    if precision == "bfloat16":
        enable_mixed_precision("bfloat16")
    cfg = Config(model=model, batch_size=batch)
    net = build_model(model, 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    trainer = make_trainer(net, cfg)
    data = [(mx.nd.random.normal(shape=(batch, 3, 32, 32)), mx.nd.array(range(batch)) % 10)] * (warmup + steps)
    parts = TrainingParts(net, trainer, make_loss(cfg), data)
    train_one_epoch(parts, data[:warmup], ctxs, sync_every=1 << 30)
    start = time.perf_counter()
    train_one_epoch(parts, data[warmup:], ctxs, sync_every=1 << 30)  # reads the loss: waits
    return {"rate": batch * steps / (time.perf_counter() - start), "startup": gluon_cifar.STARTUP.as_record()}


def cell(model: str, precision: str, env: dict, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--probe", model, precision, "--warmup", str(args.warmup),
               "--steps", str(args.steps)]
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--probe", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        model, precision = args.probe
        print(json.dumps(probe(model, MODELS[model], precision, args.warmup, args.steps)))
        return 0

    first = cell(args.models[0], "float32", {}, args)["startup"]
    variants = {"float32": ("float32", NO_AMX), "bfloat16 without AMX": ("bfloat16", NO_AMX)}
    if first["amx"] == "enabled":
        variants = {"float32": ("float32", {}), "bfloat16 without AMX": ("bfloat16", NO_AMX),
                    "bfloat16 with AMX": ("bfloat16", {})}
    rates: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for model in args.models:
            for name, (precision, env) in variants.items():
                rate = cell(model, precision, env, args)["rate"]
                rates.setdefault((model, name), []).append(rate)
                print(f"round {round_ + 1}: {model} {name}: {rate:.1f} img/s", file=sys.stderr, flush=True)
    print(f"`python benchmarks/precision.py --rounds {args.rounds} --warmup {args.warmup} --steps {args.steps}`, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}; {machine()}; start-up: AMX {first['amx']}, "
          f"oneDNN ISA \"{first['isa']}\", {first['threads']}\n")
    print("| network, batch | " + " | ".join(f"{name}, img/s (x float32)" for name in variants) + " |")
    print("| --- " * (len(variants) + 1) + "|")
    for model in args.models:
        fp32 = rates[(model, "float32")]
        cells = []
        for name in variants:
            ratios = [r / f for r, f in zip(rates[(model, name)], fp32)]
            cells.append(f"{statistics.median(rates[(model, name)]):.1f} ({statistics.median(ratios):.2f}x)")
        print(f"| {model}, {MODELS[model]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
