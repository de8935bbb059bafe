"""The benchmark commands run (tiny sizes), so they do not rot; their numbers are not tested."""
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_train_throughput_benchmark_runs(real_layout):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "train_throughput.py"),
                             "--data-dir", real_layout, "--batches", "2", "--batch-size", "16", "--rounds", "1",
                             "--num-workers", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| 1 |" in result.stdout and "median ratio" in result.stdout and "loader alone" in result.stdout
    assert not os.path.exists(os.path.join(real_layout, "train_valid_test"))  # baseline ran on a scratch copy


def test_distributed_epoch_benchmark_runs(real_layout):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "distributed_epoch.py"),
                             "--data-dir", real_layout, "--model", "cifar_resnet20_v1", "--batch-size", "128",
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
