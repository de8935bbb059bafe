#!/usr/bin/env python3
"""A preset's wall clock and holdout accuracy, from the raw layout to a scored submission.

Each run starts from a cold cache (split tree and decoded images rebuilt: data preparation is
part of the time), trains with `scripts/train.py --preset P`, predicts every test image with
`scripts/submit.py`, and scores the submission with `../shared/tools/kaggle_layout.py --score`.
One line per run is appended to --results (JSON), so seeds can run one after another and the
table is made from all of them:

  python ../shared/tools/kaggle_layout.py /data/full --holdout 5000 --junk 295000
  python benchmarks/holdout.py --data-dir /data/full --preset cpu-fast --seeds 0 1 2
  python benchmarks/holdout.py --table --results benchmarks/holdout.jsonl

With --peer-python (a venv with torch, numpy and Pillow), each seed also runs the peer's full recipe
(../shared/tools/airbench_cpu.py: airbench94, 9.9 epochs, 6 test-time views) on the same split: it
trains on the layout's training images and scores the same holdout, timed the same way (its
process from a cold cache to its score). The two sides alternate which goes first from seed to seed,
so that a host whose speed drifts hits both alike. --peer-time gives ours the wall clock of the peer's
run of the same seed, just before, as its --time-budget (accuracy at equal time; on a layout whose test
folder holds the scored images alone, which is all the peer predicts); --peer-epochs N shortens the
peer's run (with --epochs N for ours: both recipes at one length):

  python ../shared/tools/kaggle_layout.py /data/scored --holdout 5000
  python benchmarks/holdout.py --data-dir /data/scored --seeds 0 1 --peer-python /venvs/torch/bin/python --peer-time

Runs one process at a time: on a shared 2-core machine anything else running skews the times.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

from common import LAYOUT_TOOL, PEER, ROOT, machine, run_measured


def stamp() -> dict:
    """Where and when a row was measured."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {"machine": machine(), "commit": commit.stdout.strip() or None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def measure(data_dir: str, preset: str, seed: int, work: str, dtype: str, flags: list[str],
            contend_after: float | None = None, contend_until: float | None = None) -> dict:
    run, cache = os.path.join(work, f"{preset}-s{seed}"), os.path.join(work, f"cache-{preset}-s{seed}")
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)  # cold: the split and the decode are timed too
    scripts = os.path.join(ROOT, "scripts")
    # a host slowing down mid-run (or busy at first, then free), made on purpose: one busy process from minute
    # `contend_after` (0) until minute `contend_until` (or until the submission is written)
    busy = f"import time; end = time.time() + {contend_until * 60 if contend_until else 1e12}\n" \
           f"time.sleep({(contend_after or 0) * 60})\nwhile time.time() < end: pass"
    rival = subprocess.Popen([sys.executable, "-c", busy]) if contend_after or contend_until else None
    try:
        trained = run_measured([sys.executable, os.path.join(scripts, "train.py"), "--preset", preset, "--data-dir",
                                data_dir, "--seed", str(seed), "--cache-dir", cache, "--out", run, "--no-progress",
                                *flags])
        submitted = run_measured([sys.executable, os.path.join(scripts, "submit.py"), "--run", run, "--precision",
                                  dtype, "--no-progress"])
    finally:
        if rival is not None:
            rival.kill()
    scored = run_measured([sys.executable, LAYOUT_TOOL, data_dir, "--score", os.path.join(run, "submission.csv")])
    accuracy = float(re.search(r"accuracy ([0-9.]+)", scored.stdout).group(1))
    with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
        record = json.load(f)
    config, plan = record["config"], record["plan"]
    cuts = plan["replans"]  # the budget changed the run's length: the host's speed changed
    return {"preset": preset, "seed": seed, "flags": flags, "dtype": dtype, "epochs": plan["epochs"],
            "time_budget": config.get("time_budget", 0), "precision_used": plan["precision"],
            "startup": record.get("startup"),
            **({"planned_epochs": cuts[0]["epochs_before"], "time_budget_replans": cuts} if cuts else {}),
            **({"contend_after_min": contend_after} if contend_after is not None else {}),
            **({"contend_until_min": contend_until} if contend_until is not None else {}),
            "trained_model": plan["recipe"].get("model", config["model"]),  # the wider one, where the budget chose it
            "tta": plan["tta"], "test_images": len(os.listdir(os.path.join(data_dir, "test"))),
            "train_s": trained.seconds, "submit_s": submitted.seconds,
            "total_s": trained.seconds + submitted.seconds, "holdout_acc": accuracy,
            "peak_memory": max(trained.peak_memory, submitted.peak_memory),
            "train_peak_memory": trained.peak_memory, "submit_peak_memory": submitted.peak_memory, **stamp()}


def peer_zips(data_dir: str, out: str) -> tuple[str, str]:
    """The layout's training images and its scored holdout as the peer's two zips (train/<class>/<id>.jpg
    and test/<class>/<id>.jpg), so that both sides learn from and are scored on the same pixels. The
    members hold the layout's PNG bytes: Pillow decodes by content, the peer picks members by suffix."""
    answers = os.path.abspath(data_dir).rstrip("/") + ".answers.csv"  # kaggle_layout.py keeps it beside DIR
    sources = {"train": (os.path.join(data_dir, "trainLabels.csv"), os.path.join(data_dir, "train")),
               "test": (answers, os.path.join(data_dir, "test"))}
    zips = []
    for split, (labels_csv, folder) in sources.items():
        path = os.path.join(out, f"peer-{split}.zip")
        zips.append(path)
        if os.path.exists(path):
            continue
        with open(labels_csv, encoding="utf-8") as f:
            labels = list(csv.DictReader(f))
        with zipfile.ZipFile(path + ".part", "w", zipfile.ZIP_STORED) as archive:
            for row in labels:
                archive.write(os.path.join(folder, f"{row['id']}.png"), f"{split}/{row['label']}/{row['id']}.jpg")
        os.replace(path + ".part", path)
    return zips[0], zips[1]


def measure_peer(python: str, data_dir: str, seed: int, work: str, epochs: float | None = None) -> dict:
    """The peer's full run on the layout's split (`epochs`: its own 9.9 unless given): its wall clock from a
    cold cache and its TTA accuracy."""
    os.makedirs(work, exist_ok=True)
    train_zip, test_zip = peer_zips(data_dir, work)
    cache, report = os.path.join(work, f"peer-cache-s{seed}"), os.path.join(work, f"peer-s{seed}.json")
    shutil.rmtree(cache, ignore_errors=True)  # cold, like ours: decoding the images is timed too
    ran = run_measured([python, PEER, "--train-zip", train_zip, "--test-zip", test_zip, "--seed", str(seed),
                        "--no-epoch-eval", "--cache-dir", cache, "--json-out", report,
                        *(["--epochs", f"{epochs:g}"] if epochs else [])])
    with open(report, encoding="utf-8") as f:
        result = json.load(f)
    return {"preset": "peer", "seed": seed, "flags": [], "dtype": result["dtype"], "epochs": result["epochs"],
            "time_budget": 0, "precision_used": result["dtype"], "tta": "flip-shift",
            "test_images": len(zipfile.ZipFile(test_zip).namelist()),  # the scored ones: it predicts no other
            "train_s": ran.seconds,
            "submit_s": 0.0, "total_s": ran.seconds, "holdout_acc": result["tta_test_acc"],
            "holdout_acc_without_tta": result["test_acc"], "torch": result["torch"],
            "epoch_img_per_s": [e["img_per_s"] for e in result["epochs_log"]], "peak_memory": ran.peak_memory,
            **stamp()}


def table(rows: list[dict]) -> str:
    """Markdown: one line per (preset, flags, dtype, commit), with mean and spread over its seeds."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        contended = [f"--contend-{edge} {row[f'contend_{edge}_min']:g}" for edge in ("after", "until")
                     if f"contend_{edge}_min" in row]
        key = (row["preset"], " ".join(row["flags"] + contended), row["dtype"], row.get("commit"))
        groups.setdefault(key, []).append(row)
    lines = ["| preset (extra flags) | epochs | TTA | seeds | wall clock, min (mean; range) | holdout accuracy "
             "(mean; range) |", "| --- | --- | --- | --- | --- | --- |"]
    for (preset, flags, dtype, commit), runs in groups.items():
        minutes = [r["total_s"] / 60 for r in runs]
        accuracy = [r["holdout_acc"] for r in runs]
        at = f" (at {commit})" if commit else ""
        first = runs[0]
        epochs = first["epochs"]
        if "planned_epochs" in first:
            planned, ended = first["planned_epochs"], first["epochs"]
            lengths = [r["epochs"] for r in first["time_budget_replans"]]  # as the run went
            change = "cut" if ended < planned else "lengthened"
            epochs = (f"{planned} {change} to {ended}" if ended != planned
                      else f"{planned}, then {min(lengths)}-{max(lengths)}, ended at {ended}")
        name = (f"peer: airbench94 in PyTorch, {dtype}" if preset == "peer" else
                f"`{preset}`{f' `{flags}`' if flags else ''}, {dtype} prediction")
        lines.append(f"| {name}{at} | {epochs} | "
                     f"{first['tta']} | {', '.join(str(r['seed']) for r in runs)} | {statistics.mean(minutes):.1f}; "
                     f"{min(minutes):.1f}–{max(minutes):.1f} | **{statistics.mean(accuracy):.4f}**; "
                     f"{min(accuracy):.4f}–{max(accuracy):.4f} |")
    return "\n".join(lines)


def sides(index: int, peer: bool, peer_time: bool) -> list[str]:
    """Which runs the `index`-th seed makes, in order: alternated, so that a host whose speed drifts hits both
    alike; at the peer's time the peer first, so that ours gets the wall clock of the peer's run of its own
    seed (a host 15% faster by then ran the peer's seed 1 in 6.9 minutes where ours had the 8.1 of its seed 0)."""
    if not peer:
        return ["ours"]
    return ["ours", "peer"] if index % 2 == 1 and not peer_time else ["peer", "ours"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a kaggle_layout.py layout with a scored holdout")
    parser.add_argument("--preset", default="cpu-fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--precision", "--dtype", dest="dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="submit.py's --precision (default: auto)")
    parser.add_argument("--work", default=os.path.join(ROOT, "runs", "holdout"), help="run and cache directories")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "holdout.jsonl"))
    parser.add_argument("--table", action="store_true", help="print the table of --results and exit")
    parser.add_argument("--contend-after", type=float, metavar="MIN",
                        help="slow the host on purpose: a busy process from MIN minutes in until the submission")
    parser.add_argument("--contend-until", type=float, metavar="MIN",
                        help="a host busy at first: the busy process from the start (or --contend-after) until MIN "
                             "minutes in")
    parser.add_argument("--peer-python", metavar="PYTHON",
                        help="also run the peer's full recipe on the same split, with this venv's python")
    parser.add_argument("--peer-time", action="store_true",
                        help="with --peer-python: ours gets the wall clock of the peer's run of the same seed as its "
                             "--time-budget (accuracy at equal time; the peer runs first for every seed)")
    parser.add_argument("--peer-epochs", type=float, metavar="N",
                        help="with --peer-python: the peer trains N epochs (default: its own 9.9)")
    args, flags = parser.parse_known_args()  # unknown flags go to train.py
    if not args.table:
        if not args.data_dir:
            parser.error("--data-dir is required to measure")
        if args.peer_time and not args.peer_python:
            parser.error("--peer-time needs --peer-python")
        peer_minutes = None
        for index, seed in enumerate(args.seeds):
            for side in sides(index, bool(args.peer_python), args.peer_time):
                if side == "peer":
                    row = measure_peer(args.peer_python, args.data_dir, seed, args.work, args.peer_epochs)
                    peer_minutes = row["total_s"] / 60
                else:
                    budget = ["--time-budget", f"{peer_minutes:.2f}"] if args.peer_time else []
                    row = measure(args.data_dir, args.preset, seed, args.work, args.dtype, flags + budget,
                                  args.contend_after, args.contend_until)
                    if args.peer_time:
                        row["peer_time"] = True  # its --time-budget is the peer's wall clock (results.py groups so)
                print(json.dumps(row), flush=True)
                with open(args.results, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    with open(args.results, encoding="utf-8") as f:
        print(table([json.loads(line) for line in f if line.strip()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
