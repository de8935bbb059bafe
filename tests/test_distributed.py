"""Distributed training on MXNet's parameter server, on loopback: 2 workers + 1 server + scheduler."""
import json
import os
import re
import signal
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, run_in_process, run_script

pytestmark = pytest.mark.slow  # starts parameter-server jobs

LAUNCH = [sys.executable, os.path.join(ROOT, "scripts", "launch.py")]
TRAIN = [sys.executable, os.path.join(ROOT, "scripts", "train.py")]
SMALL = ["--model", "cifar_resnet20_v1", "--epochs", "2", "--batch-size", "64", "--lr", "0.1", "--lr-period", "1",
         "--lr-decay", "0.5", "--no-progress"]


def launch(*args, timeout=600):
    return subprocess.run([*LAUNCH, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def lines_of(output, role):
    return [line.split("] ", 1)[1] for line in output.splitlines() if line.startswith(f"[{role}")]


def test_learning_rate_schedule_takes_effect_on_dist_sync_updates():
    """The trap of apache/mxnet#15919: a schedule that never reaches the update. Measured directly."""
    result = launch("-n", 2, "-s", 1, "--", sys.executable, os.path.join(ROOT, "tests", "helpers", "lr_probe.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    reports = [json.loads(line) for line in lines_of(result.stdout, "worker") if line.startswith("{")]
    assert sorted(r["rank"] for r in reports) == [0, 1] and all(r["workers"] == 2 for r in reports)
    for report in reports:  # lr 1.0, halved every epoch of 2 batches
        assert report["applied_lr"] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    assert reports[0]["weights"] == reports[1]["weights"] == pytest.approx([-3.5] * 4)


def test_two_workers_train_like_one_process_and_write_the_run_once(real_layout, tmp_path):
    run = tmp_path / "dist"
    result = launch("-n", 2, "-s", 1, "--", *TRAIN, "--data-dir", real_layout, *SMALL, "--kvstore", "dist_sync",
                    "--cache-dir", tmp_path / "cache", "--out", run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    digests = re.findall(r"worker (\d) of 2: trained weights digest (\w+)", result.stdout)
    assert sorted(rank for rank, _ in digests) == ["0", "1"]
    assert digests[0][1] == digests[1][1], "the workers ended with different weights"
    validated = re.findall(r"^\[(worker \d)\] .* epoch \d/2: .* valid acc", result.stdout, re.MULTILINE)
    assert len(validated) == 2 and len(set(validated)) == 1, "one worker (rank 0) validates, once per epoch"

    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["lr"].tolist() == pytest.approx([0.1, 0.05])
    assert (metrics["examples"] == 448).all()  # rank 0's half of 920 images, in whole batches of 32
    assert json.loads((run / "config.json").read_text())["workers"] == 2

    single = run_script("train.py", "--data-dir", real_layout, *SMALL, "--out", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    reference = pd.read_csv(tmp_path / "single" / "metrics.csv")
    # Same global batch (2 x 32 vs 64): the runs differ only in BatchNorm batches and shuffling
    # within each worker's half, so training accuracy must be close. Validation accuracy on 80
    # images after 2 epochs is too noisy to compare tightly.
    assert abs(metrics["train_acc"].iloc[-1] - reference["train_acc"].iloc[-1]) < 0.1
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    assert metrics["valid_acc"].iloc[-1] >= 0.1 and reference["valid_acc"].iloc[-1] >= 0.1


def test_a_dead_worker_stops_the_whole_job(tmp_path):
    job = subprocess.Popen([*LAUNCH, "-n", "2", "-s", "1", "--grace", "5", "--", *TRAIN, "--demo", "--model",
                            "cifar_resnet20_v1", "--epochs", "50", "--batch-size", "64", "--kvstore", "dist_sync",
                            "--no-progress", "--out", str(tmp_path / "run")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids, output = {}, []
    for line in job.stdout:  # the workers also generate the demo data, concurrently: a lock serialises them
        output.append(line)
        started = re.search(r"started (\w+(?: \d+)?) \(pid (\d+)", line)
        if started:
            pids[started.group(1)] = int(started.group(2))
        if "epoch 1/50" in line:  # training is under way on both workers
            break
    assert job.poll() is None and set(pids) == {"scheduler", "server 0", "worker 0", "worker 1"}, "".join(output)
    os.kill(pids["worker 1"], signal.SIGKILL)
    output += job.stdout.readlines()  # until the launcher closes it: it stopped the rest (a hang: pytest's timeout)
    code = job.wait(timeout=120)
    assert code == 128 + signal.SIGKILL, "".join(output)
    assert "worker 1 exited with code -9: stopping every other process" in "".join(output)
    for name, pid in pids.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every process is gone, none left waiting for the dead worker


def test_dist_kvstore_outside_the_launcher_is_a_clear_error(tmp_path, capsys):
    code, err = run_in_process("train.py", "--demo", "--kvstore", "dist_sync", "--out", tmp_path / "run",
                               capsys=capsys)
    assert code == 2 and "runs under scripts/launch.py" in err
    assert not (tmp_path / "run").exists()


def test_amp_is_float16_and_refused_on_cpu_contexts(tmp_path):
    result = run_script("train.py", "--demo", "--amp", "--out", tmp_path / "run")
    assert "--amp is deprecated: it is --precision float16" in result.stderr
    assert result.returncode == 2 and "error: --precision float16 (formerly --amp) needs GPU contexts" in result.stderr
    assert not (tmp_path / "run").exists()
