#!/usr/bin/env python3
"""The README's results table, made from the benchmark records (benchmarks/holdout.jsonl) so that it never
drifts from them: the current numbers only, one row per shipped recipe and kind of machine.

A record counts for a recipe when it measured that recipe as it ships today: the preset it was recorded
under, at a commit from the one that last changed the recipe (RECIPES) on, run as shipped (no flag but a
time budget), and at least two seeds. Accuracy is the mean over the runs, with its range; time is each
run's wall clock from the raw layout to a scored submission.

  python benchmarks/results.py            # print the table
  python benchmarks/results.py --write    # put it into README.md, between the results markers
  python benchmarks/results.py --check    # exit 1 if README.md's table is not what the records make
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "benchmarks", "holdout.jsonl")
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- results.py: begin -->", "<!-- results.py: end -->"
MIN_SEEDS = 2


@dataclass(frozen=True)
class Recipe:
    """A shipped recipe and the records that measured it as it is today."""

    preset: str  # its --preset today ("peer": the peer, run beside ours by holdout.py --peer-python)
    recorded_as: str  # the `preset` of its records
    since: str  # the commit that last changed what it computes: records from here on count
    until: str | None = None  # the commit from which records of `recorded_as` measure another recipe
    recipe: str = ""
    # the commit that last changed what it computes at the peer's wall clock alone (a rule for short budgets):
    # records made at the peer's time count from here on
    peer_time_since: str | None = None


WIDE_MODEL = "fastnet_wide"  # gluon_cifar.presets.WIDE_MODEL, named here: this script needs no MXNet

RECIPES = (
    # batches in 4 pieces since 0f6e331: BatchNorm's statistics per piece
    # (at the peer's time since d029540: the frozen speed timed without a warm-up batch, submit.py's imports
    # allowed 3 s; since 03ae5c2 Muon's six views from 2.5 epochs, not 7.5: all change budgets of minutes only)
    Recipe("cpu-fast", "cpu-fast", since="0f6e331", peer_time_since="d029540",
           recipe="airbench94_muon's recipe: Muon, batches of 2000 in 4 pieces"),
    Recipe("cpu-fast-sgd", "cpu-fast", since="037acb6", until="b980032",  # cpu-fast's recipe until b980032
           recipe="airbench94's recipe: Nesterov SGD, batches of 1024"),
    Recipe("peer", "peer", since="037acb6", recipe="airbench94 in PyTorch, 9.9 epochs"),
)


def is_ancestor(older: str, newer: str) -> bool:
    """Whether commit `older` is `newer` or one of its ancestors (False for what git does not know)."""
    return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=ROOT,
                          capture_output=True).returncode == 0


def machine_kind(record: dict) -> str:
    """"AMD Zen 5", "Intel Xeon with AMX", ...: what the speed of a run depends on, from its record."""
    found = re.search(r"(AMD|Intel).*\(family (\d+), model (\d+)\)", record["machine"])
    vendor, family, model = found.group(1), int(found.group(2)), int(found.group(3))
    if vendor == "AMD":
        zen = {26: 5, 25: 4 if model >= 0x10 else 3, 23: 2}.get(family)
        return f"AMD Zen {zen}" if zen else f"AMD family {family}"
    amx = (record.get("startup") or {}).get("amx") == "enabled" or record["machine"].endswith(", AMX")
    return f"Intel Xeon (family {family}, model {model}){' with AMX' if amx else ''}"


def measures(recipe: Recipe, record: dict) -> bool:
    commit = record.get("commit") or ""
    since = recipe.peer_time_since if record.get("peer_time") and recipe.peer_time_since else recipe.since
    return (record["preset"] == recipe.recorded_as and re.fullmatch(r"[0-9a-f]{7,40}", commit) is not None
            and is_ancestor(since, commit) and not (recipe.until and is_ancestor(recipe.until, commit)))


def as_shipped(record: dict) -> bool:
    """Run with the preset's own settings: no flag but a time budget (and no host slowed on purpose)."""
    flags = record["flags"]
    return (not flags or flags[0] == "--time-budget" and len(flags) == 2) and "contend_after_min" not in record \
        and "contend_until_min" not in record


def command(recipe: Recipe, record: dict, seeds: list[int]) -> str:
    """The command that measures `record` today. HOLDOUT: `kaggle_layout.py HOLDOUT --holdout 5000 --junk 295000`,
    Kaggle's 300,000 test images; SCORED: `--holdout 5000` alone, a test folder of the 5,000 scored images, which
    is all the peer predicts: ours at the peer's wall clock (--peer-time) predicts those too."""
    ours = "" if recipe.preset == "peer" else f" --preset {recipe.preset}"
    layout = "SCORED" if record.get("peer_time") else "HOLDOUT"
    budget = " --peer-python PY --peer-time" if record.get("peer_time") else "".join(f" {f}" for f in record["flags"])
    peer = " --peer-python PY" if recipe.preset == "peer" else ""
    return (f"python benchmarks/holdout.py --data-dir {layout}{ours} --seeds {' '.join(map(str, seeds))}{budget}"
            f"{peer}")


def rows(records: list[dict]) -> list[str]:
    groups: dict[tuple, list[dict]] = {}
    for recipe in RECIPES:
        for record in records:
            if measures(recipe, record) and as_shipped(record):
                kind = "peer time" if record.get("peer_time") else tuple(record["flags"])
                groups.setdefault((recipe, machine_kind(record), kind), []).append(record)
    lines = []
    for (recipe, machine, _), runs in groups.items():
        seeds = sorted({r["seed"] for r in runs})
        if len(seeds) < MIN_SEEDS:
            continue
        accuracy = [r["holdout_acc"] for r in runs]
        minutes = [r["total_s"] / 60 for r in runs]
        commits = sorted({r["commit"] for r in runs}, key=lambda c: [r["commit"] for r in runs].index(c))
        epochs = sorted({r["epochs"] for r in runs})
        name = "the peer" if recipe.preset == "peer" else f"`{recipe.preset}`"
        wider = sorted({r["trained_model"] for r in runs if r.get("trained_model") == WIDE_MODEL})
        trained = f" ({wider[0]}: the budget chose airbench95's wider recipe)" if wider else ""
        lines.append(f"| {name} ({recipe.recipe}) | {machine} | `{command(recipe, runs[0], seeds)}` | {', '.join(commits)} "
                     f"| {', '.join(map(str, seeds))}{f' ({len(runs)} runs)' if len(runs) > len(seeds) else ''} "
                     f"| **{statistics.mean(accuracy):.4f}** ({min(accuracy):.4f}–{max(accuracy):.4f}) "
                     f"| {statistics.mean(minutes):.1f} ({min(minutes):.1f}–{max(minutes):.1f}) "
                     f"| {'–'.join(f'{e:g}' for e in (epochs[0], epochs[-1])) if len(epochs) > 1 else f'{epochs[0]:g}'}"
                     f"{trained} | {peak_memory(runs)} |")
    return lines


def peak_memory(runs: list[dict]) -> str:
    """The highest peak of the runs, GB: training / submit.py where the records hold them apart (PSS of each
    process tree), else the whole run's; "-" where not recorded."""
    def most(key: str) -> float | None:
        found = [r[key] for r in runs if r.get(key)]
        return max(found) / 1e9 if len(found) == len(runs) else None

    train, submit, whole = most("train_peak_memory"), most("submit_peak_memory"), most("peak_memory")
    if train is not None and submit is not None:
        return f"{train:.1f} / {submit:.1f}"
    return f"{whole:.1f} (whole run)" if whole is not None else "-"


def table(records: list[dict]) -> str:
    return "\n".join([
        "| recipe | machine (2 cores) | command | commit | seeds | holdout accuracy, mean (range) "
        "| minutes, raw layout to scored submission | epochs | peak memory, GB (training / submit.py) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows(records)])


def between_markers(text: str, inner: str) -> str:
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"error: README.md must hold {BEGIN} and {END} once each")
    head, rest = text.split(BEGIN)
    return f"{head}{BEGIN}\n{inner}\n{END}{rest.split(END, 1)[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="put the table into README.md")
    what.add_argument("--check", action="store_true", help="exit 1 if README.md's table differs")
    parser.add_argument("--records", default=RECORDS)
    parser.add_argument("--readme", default=README)
    args = parser.parse_args()
    with open(args.records, encoding="utf-8") as f:
        made = table([json.loads(line) for line in f if line.strip()])
    if not (args.write or args.check):
        print(made)
        return 0
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    wanted = between_markers(text, made)
    if args.check:
        if wanted != text:
            print(f"{args.readme}'s results table is not what {args.records} makes: run benchmarks/results.py --write",
                  file=sys.stderr)
            return 1
        return 0
    tmp = args.readme + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(wanted)
    os.replace(tmp, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
