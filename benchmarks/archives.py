#!/usr/bin/env python3
"""From the Kaggle download as it ships (cifar-10.zip holding train.7z and test.7z) to the decoded
training cache and to a submission: read in place (gluon_cifar), against extracting with 7-Zip
first and then running the extracted-folder path. Also libarchive against py7zr as the 7z reader.

  # once: pack a laid-out folder (kaggle_layout.py) the way the competition ships it (7-Zip, LZMA2)
  python benchmarks/archives.py build /work/data/full /work/data/download
  # the comparison (page cache dropped before each variant when allowed: run as root)
  python benchmarks/archives.py run /work/data/download/cifar-10.zip --work /work/data/bench-archives

Each variant runs as its own process tree: seconds, peak memory (PSS of the tree, sampled) and the
bytes it leaves on disk. Prediction uses submit.py's defaults on a cpu-fast network (FastNet,
precision auto, flip TTA, batches of 512, 2 decoding workers); its weights do not change the
speed, and both variants must predict the same classes for every id (checked).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

from common import ROOT, machine, run_measured

STEP = [sys.executable, os.path.abspath(__file__), "step"]


def build(src: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    for part in ("train", "test"):  # members named train/<id>.png, as in Kaggle's archives
        subprocess.run(["7z", "a", "-t7z", "-mx=5", "-bd", "-bso0", os.path.join(os.path.abspath(out), f"{part}.7z"),
                        part], cwd=src, check=True)
    zipped = os.path.join(out, "cifar-10.zip")
    with zipfile.ZipFile(zipped + ".tmp", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("train.7z", "test.7z"):
            archive.write(os.path.join(out, name), name)
        for name in ("trainLabels.csv", "sampleSubmission.csv"):
            archive.write(os.path.join(src, name), name)
    os.replace(zipped + ".tmp", zipped)
    for name in ("train.7z", "test.7z"):
        os.remove(os.path.join(out, name))
    print(f"{zipped}: {os.path.getsize(zipped) / 1e6:.0f} MB, built in {time.perf_counter() - start:.0f} s")


def disk_bytes(*paths: str) -> int:
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def variant(name: str, command: list[str], outputs: list[str]) -> dict:
    for path in outputs:
        shutil.rmtree(path, ignore_errors=True)
    cold = drop_caches()
    measured = run_measured(command)
    row = {"variant": name, "seconds": round(measured.seconds, 1), "peak_memory_mb": round(measured.peak_memory / 2**20),
           "disk_mb": round(disk_bytes(*outputs) / 1e6), "cold_cache": cold,
           **json.loads(measured.stdout.strip().splitlines()[-1])}
    print(json.dumps(row), flush=True)
    return row


def run(zipped: str, work: str) -> list[dict]:
    os.makedirs(work, exist_ok=True)
    tool = os.path.join(work, "extracted")
    ours_cache, tool_cache = os.path.join(work, "cache-ours"), os.path.join(work, "cache-extracted")
    shell = lambda script: ["bash", "-c", "set -e; " + script]  # noqa: E731
    rows = [
        variant("train data, read in place", [*STEP, "train-data", zipped, ours_cache], [ours_cache]),
        variant("train data, 7z x then folder", shell(
            f"unzip -q -o {zipped} train.7z trainLabels.csv -d {tool} && 7z x -y -bd -bso0 -o{tool} {tool}/train.7z "
            f"&& rm {tool}/train.7z && {' '.join(STEP)} train-data {tool} {tool_cache}"), [tool, tool_cache]),
        variant("test.7z to predictions, streamed", [*STEP, "predict", zipped, ours_cache, work + "/ours.npz"],
                [ours_cache]),
        variant("test.7z to predictions, 7z x then folder", shell(
            f"unzip -q -o {zipped} test.7z sampleSubmission.csv -d {tool} && 7z x -y -bd -bso0 -o{tool} "
            f"{tool}/test.7z && rm {tool}/test.7z && {' '.join(STEP)} predict {tool} {tool_cache} "
            f"{work}/extracted.npz"), [tool, tool_cache]),
        variant("read test.7z members, libarchive", [*STEP, "read", "libarchive", zipped], []),
        variant("read test.7z members, py7zr", [*STEP, "read", "py7zr", zipped], []),
    ]
    import numpy as np
    a, b = np.load(work + "/ours.npz"), np.load(work + "/extracted.npz")
    same = bool((np.sort(a["ids"]) == np.sort(b["ids"])).all() and
                (a["classes"][np.argsort(a["ids"])] == b["classes"][np.argsort(b["ids"])]).all())
    print(json.dumps({"same_predictions": same, "machine": machine()}))
    if not same:
        raise SystemExit("the two prediction paths disagree")
    return rows


def step(args: list[str]) -> None:
    """One variant's work, in its own process; prints a JSON line."""
    sys.path.insert(0, ROOT)
    import gluon_cifar  # noqa: F401  (first, before MXNet loads: threads and AMX)
    kind = args[0]
    if kind == "read":
        print(json.dumps(read_members(args[1], args[2])))
        return
    from gluon_cifar.config import Config
    from gluon_cifar.data.source import kaggle_layout
    data, cache = args[1], args[2]
    cfg = Config(data_dir=data, cache_dir=cache)
    layout = kaggle_layout(data, cfg, show_progress=False)
    if kind == "train-data":
        from gluon_cifar.data.decoded import decoded_images
        from gluon_cifar.data.kaggle import read_train
        images = decoded_images(read_train(layout).paths, cache, 2, show_progress=False)
        print(json.dumps({"images": len(images)}))
    elif kind == "predict":
        print(json.dumps(predict(layout, args[3])))


def predict(layout: str, out: str) -> dict:
    import mxnet as mx
    import numpy as np

    from gluon_cifar import STARTUP
    from gluon_cifar.data.images import check_headers
    from gluon_cifar.data.kaggle import check_sample_submission, read_test
    from gluon_cifar.data.layout import archived_test_images
    from gluon_cifar.inference.predict import (
        cast_for_inference,
        predict_archive,
        predict_files,
    )
    from gluon_cifar.models import build_model
    from gluon_cifar.precision import decide

    ctxs = [mx.cpu()]
    net = build_model("fastnet", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    precision = decide("auto", ["cpu"], STARTUP, "predict")
    net = cast_for_inference(net, precision, ctxs)
    archive = archived_test_images(layout)
    if archive is not None:
        ids, classes = predict_archive(net, archive, ctxs, 512, 2, tta="flip")
        check_sample_submission(layout, ids, archive.label)
    else:
        ids, paths = read_test(layout)
        check_headers(paths, os.path.join(layout, "test"))
        check_sample_submission(layout, ids)
        classes = predict_files(net, paths, ctxs, 512, 2, tta="flip")
    np.savez(out, ids=np.asarray(ids), classes=classes)
    return {"images": len(ids), "precision": precision}


def read_members(reader: str, zipped: str) -> dict:
    """Every member of test.7z inside the zip, read to bytes and thrown away."""
    count, size = 0, 0
    with zipfile.ZipFile(zipped) as archive, archive.open("test.7z") as stream:
        if reader == "libarchive":
            import libarchive
            with libarchive.stream_reader(stream, format_name="7zip", block_size=1 << 16) as entries:
                for entry in entries:
                    size += sum(len(block) for block in entry.get_blocks())
                    count += entry.isfile
        else:
            import py7zr
            import py7zr.io

            class Counting(py7zr.io.NullIO):
                def write(self, data):  # noqa: ANN001
                    nonlocal size
                    size += len(data)
                    return len(data)

            class Factory(py7zr.io.WriterFactory):
                def create(self, filename):  # noqa: ANN001
                    nonlocal count
                    count += 1
                    return Counting()

            with py7zr.SevenZipFile(stream) as seven:
                seven.extractall(factory=Factory())
    return {"members": count, "bytes": size}


def main() -> int:
    if sys.argv[1:2] == ["step"]:
        step(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="pack a laid-out folder as the competition ships it")
    b.add_argument("src")
    b.add_argument("out")
    r = sub.add_parser("run", help="time the paths from the zip")
    r.add_argument("zip")
    r.add_argument("--work", required=True, help="scratch folder (emptied per variant)")
    args = parser.parse_args()
    if args.command == "build":
        build(args.src, args.out)
    else:
        run(args.zip, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
