#!/usr/bin/env python3
"""A budgeted run's plan against its epochs, drawn from its benchmark record (docs/TIME_BUDGET.md's picture):
the length the run planned and each change after an epoch, and when each decision expected the run and its
submission to end, against the budget.

  python benchmarks/budget_plot.py --commit 3906237 --seed 0 --time-budget 15 --out docs/time_budget.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from results import machine_kind  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find(records: str, commit: str, seed: int, budget: float | None) -> dict:
    with open(records, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("commit") == commit and record["seed"] == seed and record.get("time_budget_replans") and \
                    budget in (None, record["time_budget"]):
                return record
    raise SystemExit(f"error: {records} holds no budgeted run of commit {commit}, seed {seed}"
                     f"{f', budget {budget:g} min' if budget else ''} that changed its length")


def draw(record: dict, out: str) -> None:
    replans = record["time_budget_replans"]
    budget_min = record["time_budget"]
    after = [0] + [r["after_epoch"] for r in replans]
    lengths = [record["planned_epochs"]] + [r["epochs"] for r in replans]
    ends = [None] + [r["end_s"] / 60 for r in replans]
    uncut = [None] + [r["uncut_end_s"] / 60 for r in replans]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.step(after + [record["epochs"]], lengths + [lengths[-1]], where="post", color="C0")
    left.plot(after, lengths, "o", color="C0")
    left.plot([0, record["epochs"]], [0, record["epochs"]], ":", color="grey", label="epochs done")
    left.set(xlabel="epochs done", ylabel="run length decided (epochs)", title="the run's length")
    left.legend(loc="lower right")
    right.axhline(budget_min, color="C3", label=f"budget {budget_min:g} min")
    right.axhline(0.9 * budget_min, color="C3", ls="--", lw=0.8, label="the plan's margin (90%)")
    right.plot(after[1:], uncut[1:], "x", color="grey", label="end at its pace, length unchanged")
    right.plot(after[1:], ends[1:], "o", color="C0", label="end at its pace, new length")
    right.plot([record["epochs"]], [record["total_s"] / 60], "*", ms=12, color="C2", label="the real end")
    right.set(xlabel="epochs done", ylabel="minutes", title="when the run and its submission end",
              ylim=(0.5 * budget_min, max(1.08 * budget_min, 1.04 * max(uncut[1:]))))
    right.legend(loc="lower left", fontsize=7)
    fig.suptitle(f"{record['preset']} --time-budget {budget_min:g}, seed {record['seed']} "
                 f"({machine_kind(record)}, commit {record['commit']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out + ".tmp.png", dpi=90)
    os.replace(out + ".tmp.png", out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default=os.path.join(ROOT, "benchmarks", "holdout.jsonl"))
    parser.add_argument("--commit", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, help="the run's budget, where the commit has several")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "time_budget.png"))
    args = parser.parse_args()
    draw(find(args.records, args.commit, args.seed, args.time_budget), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
