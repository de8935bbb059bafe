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
    assert "| 1 |" in result.stdout and "median ratio" in result.stdout
    assert not os.path.exists(os.path.join(real_layout, "train_valid_test"))  # baseline ran on a scratch copy


def test_distributed_epoch_benchmark_runs(real_layout):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "distributed_epoch.py"),
                             "--data-dir", real_layout, "--model", "cifar_resnet20_v1", "--batch-size", "128",
                             "--rounds", "1", "--num-workers", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| 1 |" in result.stdout and "median ratio (distributed / single)" in result.stdout
