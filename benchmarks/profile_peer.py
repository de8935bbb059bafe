#!/usr/bin/env python3
"""Where one steady-state training step of the peer spends its time (torch.profiler), grouped like
benchmarks/profile_step.py's MXNet profile so the two columns line up.

Runs in the peer's own venv (torch, numpy, Pillow; never the project's): it imports the peer,
../shared/tools/airbench_cpu.py, for its network, loss, optimizer settings, lookahead and batch
augmentation, and times them on random images (no data set needed).

  /path/to/torch-venv/bin/python benchmarks/profile_peer.py --steps 10
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))

import torch  # noqa: E402

import airbench_cpu as peer  # noqa: E402

# torch operator names -> groups (first match wins); "aten::" dropped before matching.
GROUPS = [
    ("augmentation", r"^(flip|where|rand|randint|reflection_pad|index|index_put_|masked|eq|bitwise_and|"
                     r"nonzero|randperm)"),
    ("convolution backward", r"convolution_backward|mkldnn_convolution_backward|mm$|addmm_backward"),
    ("convolution forward", r"^(mkldnn_convolution|_convolution|convolution|conv2d|linear|mm|addmm)$"),
    ("BatchNorm", r"batch_norm"),
    ("casts", r"^(to|_to_copy|copy_|contiguous|clone)$"),
    ("zero fills", r"^(fill_|zero_|zeros)$"),
    ("GELU", r"gelu"),
    ("pooling", r"max_pool|pool"),
    ("optimizer update", r"_foreach|add_|mul_|addcmul|lerp|sgd"),
    ("loss and metrics", r"cross_entropy|log_softmax|nll_loss|sum|mean|argmax|softmax"),
]


def group_of(name: str) -> str:
    name = name.replace("aten::", "")
    for group, pattern in GROUPS:
        if re.search(pattern, name):
            return group
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--epoch", type=int, default=1, help="profile a step of this epoch (4: the whitening bias "
                                                              "frozen, as the peer does after its first 3)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    use_bf16 = args.dtype == "bf16"
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    steps = args.warmup + args.steps
    images = torch.randint(0, 256, (args.batch_size * steps, 32, 32, 3), dtype=torch.uint8).numpy()
    labels = torch.randint(0, 10, (len(images),)).numpy()
    loader = peer.CifarLoader(images, labels, train=True, batch_size=args.batch_size, aug=peer.hyp["aug"],
                              store_dtype=torch.bfloat16 if use_bf16 else torch.float32)
    net = peer.make_net()
    peer.init_whitening_conv(net[0], loader.normalize(loader.images[:5000]))
    momentum = peer.hyp["opt"]["momentum"]
    lr = peer.hyp["opt"]["lr"] / (1024 * (1 + 1 / (1 - momentum)))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=peer.hyp["opt"]["label_smoothing"], reduction="none")
    lookahead = peer.LookaheadState(net)
    net.train()
    net[0].bias.requires_grad = args.epoch <= peer.hyp["opt"]["whiten_bias_epochs"]  # as the peer's epoch loop

    def run(count: int, start: int) -> None:
        it = iter(loader)  # the epoch's augmentation (crop of the whole set) runs here, as in the peer
        for step in range(start, start + count):
            inputs, targets = next(it)
            with amp():
                loss = loss_fn(net(inputs), targets).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % 5 == 0:
                lookahead.update(net, decay=0.5)

    run(args.warmup, 0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run(args.steps, args.warmup)
        wall = time.perf_counter() - start
    events = prof.key_averages()
    # Self time, so that nested operators are not counted twice.
    rows = sorted(((e.key, e.count, e.self_cpu_time_total / 1e3) for e in events), key=lambda r: -r[2])
    print(f"{'operator':40s} {'calls/step':>10s} {'ms/step':>9s}")
    for name, calls, total in rows[:args.top]:
        print(f"{name:40s} {calls / args.steps:10.1f} {total / args.steps:9.1f}")
    grouped: dict[str, float] = {}
    for name, _, total in rows:
        grouped[group_of(name)] = grouped.get(group_of(name), 0.0) + total / args.steps
    print(json.dumps({"framework": "torch " + torch.__version__, "precision": args.dtype, "batch": args.batch_size,
                      "step_ms": round(1e3 * wall / args.steps, 1),
                      "img_per_s": round(args.batch_size * args.steps / wall, 1),
                      "operator_ms": {k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
