"""Checkpoints, exact resume after kill -9, divergence, and interrupted writes.

Runs use small networks on the demo data: the checkpoint machinery is the same as for ResNet-18
and the runs take seconds instead of minutes.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon

from gluon_cifar.config import Config
from gluon_cifar.errors import ConfigError, DivergenceError, GluonCifarError
from gluon_cifar.runs import checkpoint
from gluon_cifar.training.engine import train_one_epoch
from gluon_cifar.training.optim import make_trainer
from gluon_cifar.training.parts import TrainingParts
from gluon_cifar.training.records import EpochProgress
from tests.conftest import ROOT, run_in_process, run_script
from tests.test_engine import batches, small_net

pytestmark = pytest.mark.slow  # trains, kills and resumes runs


def _parts(net, trainer):
    return TrainingParts(net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), [])


SMALL = ["--demo", "--model", "fastnet_small", "--batch-size", "64", "--no-progress"]  # a demo epoch in ~2 s
# Runs still training when the test acts on them (a signal, a second process, a NaN): epochs of ~10 s
STEADY = ["--demo", "--model", "cifar_resnet20_v1", "--batch-size", "64", "--no-progress"]


def params_of(run):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(run / "model.params")).items()}


def checkpoint_state(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("state.json"))


# The folder loader with the default recipe's SGD; the decoded loader with cpu-fast's recipes: Muon's momentum,
# alternating flips, no validation part, the whitening bias frozen after epoch 1 and a last epoch that stops
# part-way (12 of 15 batches; the run is killed and resumed in it) must survive it too; with SGD, lookahead's
# running average as well. (The decoded loader with the default recipe added a minute to the suite and nothing
# the two cpu-fast cases do not resume.)
@pytest.mark.parametrize("recipe,batches_per_epoch", [
    (["--epochs", "2", "--loader", "folder", "--checkpoint-every", "4"], 14),  # 900 images: 14 batches of 64
    (["--epochs", "1.8", "--preset", "cpu-fast", "--model", "fastnet_small", "--warmup-epochs", "1",
      "--checkpoint-every", "5", "--whiten-bias-epochs", "1"], 15),
    (["--epochs", "1.8", "--preset", "cpu-fast-sgd", "--model", "fastnet_small", "--warmup-epochs", "1",
      "--checkpoint-every", "5", "--whiten-bias-epochs", "1"], 15),
], ids=["folder", "cpu-fast", "cpu-fast-sgd"])
def test_kill_minus_9_mid_epoch_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, recipe,
                                                                                 batches_per_epoch):
    args = SMALL + recipe
    reference = run_script("train.py", *args, "--out", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "crashed"
    victim = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args, "--out", str(run)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / checkpoint.LAST
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None:
        try:
            position = checkpoint_state(last)["progress"]
            if position["epoch"] == 2 and position["batches"] > 0:  # part-way through the last epoch
                break
        except (OSError, KeyError, zipfile.BadZipFile):
            pass
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed mid-epoch"
    position = checkpoint_state(last)["progress"]
    assert position["epoch"] == 2 and 0 < position["batches"] < batches_per_epoch

    resumed = run_script("train.py", "--resume", run, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at epoch 2, batch {position['batches']}" in resumed.stderr
    # Bitwise on the same machine: same batches, same order of operations, weights and momentum
    # restored exactly from float32 files.
    for name, value in params_of(tmp_path / "reference").items():
        np.testing.assert_array_equal(params_of(run)[name], value, err_msg=name)
    columns = ["epoch", "lr", "train_loss", "train_acc", "valid_acc", "examples"]
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv")[columns],
                                  pd.read_csv(tmp_path / "reference" / "metrics.csv")[columns])
    if "1.8" in recipe:
        assert pd.read_csv(run / "metrics.csv")["examples"].tolist() == [15 * 64, 12 * 64]
    assert not [n for n in os.listdir(run) if n.startswith(".")], "temporary files left behind"


def test_resume_extends_a_finished_run_and_refuses_other_changes(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_script("train.py", *SMALL, "--epochs", "1", "--out", run).returncode == 0
    code, err = run_in_process("train.py", "--resume", run, capsys=capsys)  # refusals stop before training
    assert code == 2 and "already finished its 1 epochs; pass --epochs" in err
    code, err = run_in_process("train.py", "--resume", run, "--lr", "0.1", "--epochs", "2", capsys=capsys)
    assert code == 2 and "cannot change --lr (0.02 -> 0.1)" in err
    longer = run_script("train.py", "--resume", run, "--epochs", "2", "--no-progress")
    assert longer.returncode == 0, longer.stderr
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2]
    assert json.loads((run / "config.json").read_text())["plan"]["epochs"] == 2
    code, err = run_in_process("train.py", *SMALL, "--epochs", "1", "--out", run, capsys=capsys)
    assert code == 2 and f"{run} already holds a run: continue it with --resume" in err


def test_resume_errors_name_the_problem(tmp_path, capsys):
    code, err = run_in_process("train.py", "--resume", tmp_path, capsys=capsys)
    assert code == 2 and "config.json does not exist" in err

    run = tmp_path / "run"
    assert run_script("train.py", *SMALL, "--epochs", "1", "--out", run).returncode == 0
    config = json.loads((run / "config.json").read_text())
    config["config"]["wd"] = 0.1  # config.json no longer matches the checkpoint
    (run / "config.json").write_text(json.dumps(config))
    foreign = run_script("train.py", "--resume", run, "--epochs", "2")
    assert foreign.returncode == 2 and "it does not belong to this run" in foreign.stderr and "wd" in foreign.stderr

    last = run / checkpoint.LAST
    best = (run / checkpoint.BEST).read_bytes()
    os.unlink(last)
    last.write_bytes(best[: len(best) // 2])  # truncated, e.g. by a full disk during a copy
    truncated = run_script("train.py", "--resume", run, "--epochs", "2")
    assert truncated.returncode == 2 and f"{last} is damaged" in truncated.stderr
    assert "Traceback" not in truncated.stderr
    assert f"Resume from {run / checkpoint.BEST} by copying it over {last}" in truncated.stderr
    os.unlink(run / checkpoint.BEST)
    os.link(last, run / checkpoint.BEST)  # the last epoch was the best: one file under both names, both damaged
    same = run_script("train.py", "--resume", run, "--epochs", "2")
    assert same.returncode == 2 and "No other checkpoint holds the run: start it again" in same.stderr, same.stderr


def test_absurd_learning_rate_stops_with_a_message_and_leaves_no_half_run(tmp_path):
    run = tmp_path / "run"
    result = run_script("train.py", *STEADY, "--epochs", "1", "--lr", "1e12", "--sync-every", "1", "--out", run)
    assert result.returncode == 2, result.stderr
    assert "the training loss became" in result.stderr and "in epoch 1, batch" in result.stderr
    assert "Lower --lr" in result.stderr and "Traceback" not in result.stderr
    assert not run.exists()  # no checkpoint was reached: nothing is left behind


def test_divergence_names_the_batch_and_is_caught_before_any_checkpoint():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = small_net(ctxs)
    dense_weight = list(net.collect_params().values())[-2]

    def loader():
        for index, batch in enumerate(batches([8] * 6), start=1):
            if index == 5:  # the weights blow up just before batch 5, as in a diverging run
                dense_weight.set_data(dense_weight.data() * np.nan)
            yield batch

    synced = []
    with pytest.raises(DivergenceError, match=r"loss became nan in epoch 3, batch 5 \(learning rate 0.1\)"):
        parts = TrainingParts(net, make_trainer(net, Config(lr=0.1)), gluon.loss.SoftmaxCrossEntropyLoss(), [])
        train_one_epoch(parts, loader(), ctxs, sync_every=2, on_sync=lambda p: synced.append(p.batches),
                        progress=EpochProgress(epoch=3))
    assert synced == [2, 4]  # a checkpoint could follow batch 4; never a later one


def test_interrupted_checkpoint_write_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    run = str(tmp_path)
    ctxs = [mx.cpu(0)]
    net = small_net(ctxs)
    trainer = make_trainer(net, Config(lr=0.1))
    train_one_epoch(_parts(net, trainer), batches([8, 8, 8]), ctxs)
    saved = [p.data().asnumpy() for p in net.collect_params().values()]
    checkpoint.save(run, net, trainer, EpochProgress(epoch=2), [], Config().to_dict(), {}, "labels", None)

    train_one_epoch(_parts(net, trainer), batches([8, 8, 8], seed=1), ctxs)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    with pytest.raises(GluonCifarError, match=r"cannot write .*checkpoint-last.zip: no space left on device"):
        checkpoint.save(run, net, trainer, EpochProgress(epoch=3), [], Config().to_dict(), {}, "labels", None)
    monkeypatch.undo()

    assert sorted(os.listdir(run)) == [checkpoint.LAST]  # no temporary file left
    previous = checkpoint.read(os.path.join(run, checkpoint.LAST))
    assert previous.progress.epoch == 2
    fresh = small_net(ctxs)
    checkpoint.restore(previous, fresh, make_trainer(fresh, Config(lr=0.1)), ctxs)
    for param, value in zip(fresh.collect_params().values(), saved):
        np.testing.assert_array_equal(param.data().asnumpy(), value)


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    ctxs = [mx.cpu(0)]
    net = small_net(ctxs)
    trainer = make_trainer(net, Config())
    train_one_epoch(_parts(net, trainer), batches([8]), ctxs)
    checkpoint.save(str(tmp_path), net, trainer, EpochProgress(epoch=2), [], Config().to_dict(), {}, "labels", None)
    other = gluon.nn.HybridSequential()
    other.add(gluon.nn.Dense(3, in_units=5))
    other.initialize(ctx=ctxs)
    with pytest.raises(ConfigError, match="does not fit this network"):
        checkpoint.restore(checkpoint.read(str(tmp_path / checkpoint.LAST)), other,
                           gluon.Trainer(other.collect_params(), "sgd"), ctxs)


def start(*args, **popen):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(path, process, seconds=300):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.05)


def test_a_second_run_on_a_live_run_directory_stops_at_once_and_the_first_is_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    first = start(*STEADY, "--epochs", "2", "--out", run)
    wait_for(run / "config.json", first)  # holding the lock by then
    # In this process: both stop before training (the new run once it has prepared its data, at the lock: in
    # float32, so that it leaves this process out of mixed precision)
    for second in (["--demo", "--precision", "float32", "--epochs", "1", "--out", run], ["--resume", run]):
        code, err = run_in_process("train.py", *second, "--no-progress", capsys=capsys)
        assert code == 2, err
        assert f"{run} is in use by a run that is still going (pid {first.pid} on " in err
        assert "Traceback" not in err
    assert first.poll() is None  # the checks ran while the first trained
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert len(pd.read_csv(run / "metrics.csv")) == 2 and not (run / ".lock").exists()


# Ctrl-C signals the whole foreground group; `kill PID` (or a scheduler) sends SIGTERM to the process.
STOPS = {"ctrl-c": (lambda pid: os.killpg(pid, signal.SIGINT), 130, "interrupted"),
         "sigterm": (lambda pid: os.kill(pid, signal.SIGTERM), 143, "terminated")}


@pytest.mark.parametrize("stop", STOPS)
def test_ctrl_c_says_how_to_resume_in_one_line_and_resume_finishes(tmp_path, stop):
    send, code, word = STOPS[stop]
    run = tmp_path / "run"
    victim = start(*STEADY, "--epochs", "1", "--checkpoint-every", "4", "--out", run,
                   start_new_session=True)  # its own group, like a shell job
    wait_for(run / checkpoint.LAST, victim)  # after batch 4 of 14: stopped part-way
    send(victim.pid)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == code, err
    assert err.rstrip().splitlines()[-1] == f"{word}: continue with: python scripts/train.py --resume {run}", err
    assert "Traceback" not in err
    resumed = run_script("train.py", "--resume", run, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert len(pd.read_csv(run / "metrics.csv")) == 1


@pytest.mark.parametrize("stop", STOPS)
def test_ctrl_c_before_the_first_checkpoint_leaves_nothing_behind(tmp_path, stop):
    send, code, word = STOPS[stop]
    run = tmp_path / "run"
    victim = start(*STEADY, "--epochs", "3", "--out", run, start_new_session=True)
    wait_for(run / "config.json", victim)
    send(victim.pid)
    _, err = victim.communicate(timeout=120)
    last = err.splitlines()[-1]
    assert victim.returncode == code and last.startswith(word) and "nothing was kept" in last, err
    assert "Traceback" not in err
    assert not run.exists()  # neither config.json nor .lock


def test_a_disk_that_fills_up_mid_run_is_named_and_the_last_checkpoint_survives(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a small filesystem to fill up")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = disk / "run"
        victim = start(*STEADY, "--epochs", "1", "--checkpoint-every", "4", "--out", run)
        wait_for(run / checkpoint.LAST, victim)  # after batch 4 of 14; the next checkpoint cannot be written
        with open(disk / "filler", "wb") as filler:  # take every byte left
            with pytest.raises(OSError):
                while True:
                    filler.write(b"\0" * (1 << 20))
                    filler.flush()
        _, err = victim.communicate(timeout=300)
        assert victim.returncode == 2, err
        last_line = err.strip().splitlines()[-1]
        assert last_line.startswith(f"error: cannot write {run}/") and "no space left on device" in last_line
        assert last_line.endswith(f"continue with: python scripts/train.py --resume {run}")
        assert "Traceback" not in err and not [n for n in os.listdir(run) if n.endswith(".tmp")]
        last = checkpoint.read(str(run / checkpoint.LAST)).progress  # the last one is intact
        assert (last.epoch, last.batches) == (1, 4)
        os.remove(disk / "filler")
        resumed = run_script("train.py", "--resume", run, "--no-progress")
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming {run} at epoch 1, batch 4" in resumed.stderr and len(pd.read_csv(run / "metrics.csv")) == 1
        # a disk already full at the first checkpoint: nothing is kept, and nothing suggests --resume
        shutil.rmtree(run)
        fill_up(disk / "filler", keep=256 << 10)  # config.json fits, a checkpoint does not
        again = disk / "again"
        failed = run_script("train.py", *STEADY, "--epochs", "1", "--out", again)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
        last_line = failed.stderr.strip().splitlines()[-1]
        assert "no space left on device" in last_line and "--resume" not in last_line
        assert last_line.endswith("no checkpoint was kept: start the run again") and not again.exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def fill_up(path, keep: int) -> None:
    """Fill the filesystem of `path` with a file until about `keep` bytes are left."""
    with open(path, "wb") as filler:
        while shutil.disk_usage(os.path.dirname(path)).free > keep + (1 << 20):
            filler.write(b"\0" * (1 << 20))
            filler.flush()
        filler.write(b"\0" * max(0, shutil.disk_usage(os.path.dirname(path)).free - keep))
