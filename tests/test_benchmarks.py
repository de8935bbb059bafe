"""The benchmark commands run (tiny sizes), so they do not rot; their numbers are not tested."""
import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # runs the benchmark commands


def test_bench_measures_everything_and_writes_its_table_between_the_markers(real_layout, tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nkept above\n<!-- bench.py: begin -->\nold numbers\n<!-- bench.py: end -->\n"
                   "kept below\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench.py"), "--data-dir", real_layout,
                             "--rounds", "1", "--train-batches", "2", "--batch-size", "16", "--loader-batches", "2",
                             "--predict-images", "20", "--full-predict", "--num-workers", "1", "--write", str(doc)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nkept above\n") and text.endswith("kept below\n")
    assert "old numbers" not in text and "Command: `python benchmarks/bench.py --data-dir" in text
    for row in ("training end to end, decoded loader", "training end to end, folder loader", "compute-only ceiling",
                "decoded loader alone", "prediction, bfloat16", "prediction over all 50 test images",
                "data preparation, full layout", "decoded loader's one-time decode", "| 1 |"):
        assert row in text, row
    assert "| 2,000 links / 0 B |" in text  # train + valid + train_valid links, no image bytes
    assert not os.path.exists(os.path.join(real_layout, "train_valid_test"))  # the baseline ran on scratch copies
    assert not [n for n in os.listdir(os.path.dirname(real_layout)) if n.startswith("gluon_cifar_bench_")]


def test_distributed_epoch_benchmark_runs(real_layout):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "distributed_epoch.py"),
                             "--data-dir", real_layout, "--model", "fastnet_small", "--batch-size", "128",
                             "--rounds", "1", "--num-workers", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| 1 |" in result.stdout and "median ratio (distributed / single)" in result.stdout


def test_data_prep_benchmark_runs(real_layout):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "data_prep.py"), "--data-dir",
                             real_layout], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    ours, baseline = [line for line in result.stdout.splitlines() if line.startswith("| gluon_cifar") or
                      line.startswith("| d2l baseline")]
    assert ours.endswith("| 0 |")  # links only: no image bytes written
    assert not baseline.endswith("| 0 |") and "faster" in result.stdout
    assert not os.path.exists(os.path.join(real_layout, "train_valid_test"))  # baseline ran on a scratch copy


def test_compute_tuning_benchmark_runs():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "compute_tuning.py"), "--rounds", "1",
                             "--batches", "1", "--only", "MXNet's defaults (static_alloc, batch 128)", "batch 64"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| batch 64 |" in result.stdout and "GFLOP/s" in result.stdout


def test_at_the_peers_time_each_seed_runs_the_peer_first_else_the_sides_alternate(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import holdout

    assert [holdout.sides(i, peer=True, peer_time=True) for i in range(3)] == [["peer", "ours"]] * 3
    assert [holdout.sides(i, peer=True, peer_time=False) for i in range(3)] == [
        ["peer", "ours"], ["ours", "peer"], ["peer", "ours"]]
    assert holdout.sides(1, peer=False, peer_time=False) == ["ours"]


def test_the_peer_learns_from_and_is_scored_on_the_same_images_as_ours(real_layout, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import holdout

    zips = holdout.peer_zips(real_layout, str(tmp_path))
    labels = {"train": os.path.join(real_layout, "trainLabels.csv"), "test": real_layout + ".answers.csv"}
    for split, path in zip(("train", "test"), zips):
        with open(labels[split], encoding="utf-8") as f:
            expected = {f"{split}/{row['label']}/{row['id']}.jpg": row["id"] for row in csv.DictReader(f)}
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == sorted(expected)  # 1,000 and 50: every image, once
            for member, image_id in expected.items():
                with open(os.path.join(real_layout, split, f"{image_id}.png"), "rb") as f:
                    assert archive.read(member) == f.read(), member  # the same pixels as ours, losslessly
            assert Image.open(io.BytesIO(archive.read(member))).size == (32, 32)  # the peer's Pillow reads it
    assert sorted(os.listdir(tmp_path)) == ["peer-test.zip", "peer-train.zip"]  # no part-written file left
