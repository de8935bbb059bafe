"""TensorBoard event files: what a run writes there is what it trained, read back from the files."""
import glob
import os
import struct
from collections import defaultdict

import pandas as pd
import pytest

from gluon_cifar.runs import rundir
from gluon_cifar.training.schedules import learning_rate
from tests.conftest import run_script

pytestmark = pytest.mark.slow  # trains a tiny network

TINY = ["--demo", "--preset", "cpu-fast", "--model", "fastnet_small", "--batch-size", "128", "--epochs", "2",
        "--warmup-epochs", "1", "--precision", "float32", "--no-progress"]


def read_events(folder):
    """{tag: [(step, value), ...]} from every event file in `folder` (TFRecord framing: length,
    its CRC, the Event message, its CRC)."""
    from tensorboardX.proto import event_pb2
    scalars = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        data, pos = open(path, "rb").read(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                scalars[value.tag].append((event.step, value.simple_value))
    return scalars


def test_a_run_writes_its_curves_as_tensorboard_events(tmp_path):
    run = tmp_path / "run"
    trained = run_script("train.py", *TINY, "--sync-every", "2", "--out", run)
    assert trained.returncode == 0, trained.stderr
    events = read_events(run / "tensorboard")
    metrics = pd.read_csv(run / "metrics.csv")
    for tag, column in [("epoch/train_loss", "train_loss"), ("epoch/train_acc", "train_acc"), ("epoch/lr", "lr"),
                        ("epoch/images_per_s", "examples_per_sec")]:
        assert [s for s, _ in events[tag]] == [1, 2]
        assert [v for _, v in events[tag]] == pytest.approx(metrics[column].tolist(), rel=1e-6)
    assert "epoch/valid_acc" not in events  # cpu-fast trains without validation
    # 7 batches an epoch (896 images in batches of 128): synced every 2 batches and at each epoch's end
    steps = [s for s, _ in events["sync/lr"]]
    assert steps == [2, 4, 6, 7, 9, 11, 13, 14]
    cfg, _ = rundir.load(str(run))  # the settings it trained with
    assert [v for _, v in events["sync/lr"]] == pytest.approx([learning_rate(cfg, s, 7) for s in steps], rel=1e-6)
    assert all(0 < v < 10 for _, v in events["sync/train_loss"]) and all(v > 0 for _, v in events["sync/images_per_s"])


def test_a_resumed_run_whose_tensorboard_folder_cannot_be_written_warns_once_and_trains_on(tmp_path):
    """`--resume` of a run whose tensorboard/ had become a file died with a traceback; a full disk already warned
    and trained on. (Root writes into any folder, so the unwritable folder is a file here.)"""
    run = tmp_path / "run"
    first = run_script("train.py", *TINY[:7], "--epochs", "1", "--warmup-epochs", "0", "--precision", "float32",
                       "--no-progress", "--out", run)
    assert first.returncode == 0, first.stderr
    for name in os.listdir(run / "tensorboard"):
        os.remove(run / "tensorboard" / name)
    os.rmdir(run / "tensorboard")
    (run / "tensorboard").write_text("not a folder\n")
    resumed = run_script("train.py", "--resume", run, "--epochs", "2", "--no-progress")
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert resumed.stderr.count(f"no TensorBoard events: cannot write {run}/tensorboard") == 1, resumed.stderr
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2]
