#!/usr/bin/env python3
"""Time per oneDNN primitive from a verbose log, for MXNet (oneDNN 2.4) and PyTorch (oneDNN 3.x) alike.

Both frameworks run their CPU convolutions, BatchNorm, GELU and pooling through oneDNN, which
reports every execution with its implementation and time when asked (DNNL_VERBOSE=1 for MXNet,
ONEDNN_VERBOSE=1 for PyTorch). This sums them per (primitive, pass, shape) and divides by the
number of steps the log covers, so two logs show kernel by kernel where one framework is slower:

  DNNL_VERBOSE=1 python benchmarks/profile_step.py --no-profile --warmup 3 --steps 3 > mxnet.log
  ONEDNN_VERBOSE=1 TORCH_VENV/bin/python benchmarks/profile_peer.py --warmup 3 --steps 3 > torch.log
  python benchmarks/onednn_verbose.py mxnet.log torch.log --steps 6

(the logs cover warm-up and timed steps: --steps counts both).
"""
from __future__ import annotations

import argparse
import collections
import sys


def per_step(path: str, steps: int) -> dict[tuple[str, str, str], tuple[str, float]]:
    """{(primitive, pass, shape): (implementation, ms per step)} of every `exec` line in `path`."""
    times: dict[tuple[str, str, str], float] = collections.defaultdict(float)
    impls: dict[tuple[str, str, str], str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith(("dnnl_verbose,", "onednn_verbose,")) or ",exec," not in line:
                continue
            fields = line.rstrip().split(",")
            at = fields.index("exec")
            # after "exec": engine, primitive, implementation, pass, memory descriptors, attributes,
            # auxiliary, problem, time (oneDNN 2.x and 3.x's "v1" format alike)
            _, primitive, impl, prop = fields[at + 1:at + 5]
            problem, ms = fields[-2], float(fields[-1])
            key = (primitive, prop, problem)
            times[key] += ms
            impls[key] = impl
    return {key: (impls[key], total / steps) for key, total in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="verbose logs; each becomes a column")
    parser.add_argument("--steps", type=int, required=True, help="training steps each log covers")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    columns = [per_step(path, args.steps) for path in args.logs]
    keys = sorted(set().union(*columns), key=lambda k: -max(c.get(k, ("", 0.0))[1] for c in columns))
    print("| primitive, pass, shape | " + " | ".join(f"{path}: implementation, ms/step" for path in args.logs) + " |")
    print("| --- " * (len(args.logs) + 1) + "|")
    for key in keys[:args.top]:
        cells = [f"{c[key][0]}, {c[key][1]:.1f}" if key in c else "—" for c in columns]
        print(f"| {key[0]} {key[1]} `{key[2]}` | " + " | ".join(cells) + " |")
    totals = [sum(ms for _, ms in c.values()) for c in columns]
    print("| **all oneDNN primitives** | " + " | ".join(f"**{t:.0f}**" for t in totals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
