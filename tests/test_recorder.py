"""The run recorder: the one writer of a run directory, and the no-op recorder of other workers."""
import json
import os
import zipfile

import mxnet as mx
import pytest
from mxnet import gluon

from gluon_cifar.config import Config
from gluon_cifar.errors import GluonCifarError
from gluon_cifar.runs import checkpoint, plots, rundir
from gluon_cifar.runs.recorder import NullRecorder, RunRecorder, open_run
from gluon_cifar.training.optim import make_trainer
from gluon_cifar.training.records import EpochProgress, EpochResult
from gluon_cifar.training.run_plan import RunLength, RunPlan

CLASSES = ["a", "b", "c"]


def small():
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(ctx=[mx.cpu()])
    return net, make_trainer(net, Config(lr=0.1))


def plan_of(cfg):
    """The plan of a run of cfg without a time budget."""
    return RunPlan(RunLength(cfg.epochs), 0, cfg.tta, "float32")


def epoch(n, valid_acc):
    return EpochResult(n, 0.1, 1.0 / n, 0.5, valid_acc, 8, 1.0, 8.0)


def state_of(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("state.json"))


def test_a_recorder_writes_every_file_and_keeps_the_best_epoch(tmp_path):
    run, (net, trainer) = str(tmp_path / "run"), small()
    with open_run(run, Config(epochs=3), plan_of(Config(epochs=3)), CLASSES, "labels-digest", {"n_train": 8}) as recorder:
        assert isinstance(recorder, RunRecorder)
        history = []
        for n, acc in [(1, 0.5), (2, 0.4), (3, 0.6)]:
            history.append(epoch(n, acc))
            recorder.epoch_end(net, trainer, history)
            if n == 2:  # not an improvement: -best.zip still holds epoch 1's state
                assert state_of(os.path.join(run, checkpoint.BEST))["progress"]["epoch"] == 2
        recorder.finish(history)
    last, best = state_of(os.path.join(run, checkpoint.LAST)), state_of(os.path.join(run, checkpoint.BEST))
    assert last["progress"]["epoch"] == 4 and len(last["history"]) == 3 and last["plan"]["epochs"] == 3
    assert best["best_valid_acc"] == last["best_valid_acc"] == 0.6 and last["data_fingerprint"] == "labels-digest"
    assert {rundir.CONFIG, rundir.CLASSES, rundir.METRICS, rundir.PARAMS, plots.CURVES} <= set(os.listdir(run))
    assert rundir.info(run)["n_train"] == 8 and not os.path.exists(os.path.join(run, rundir.LOCK))


def test_a_mid_epoch_checkpoint_carries_the_position_and_the_best_so_far(tmp_path):
    run, (net, trainer) = str(tmp_path / "run"), small()
    with open_run(run, Config(), plan_of(Config()), CLASSES, "x", {}) as recorder:
        recorder.epoch_end(net, trainer, [epoch(1, 0.7)])
        recorder.checkpoint(net, trainer, EpochProgress(epoch=2, batches=5, examples=40), [epoch(1, 0.7)])
    state = state_of(os.path.join(run, checkpoint.LAST))
    assert state["progress"]["batches"] == 5 and state["best_valid_acc"] == 0.7


def test_a_worker_that_does_not_write_touches_nothing(tmp_path):
    run, (net, trainer) = str(tmp_path / "run"), small()
    with open_run(run, Config(), plan_of(Config()), CLASSES, "x", {}, writes=False) as recorder:
        assert type(recorder) is NullRecorder
        recorder.epoch_end(net, trainer, [epoch(1, None)])
        recorder.finish([epoch(1, None)])
    assert not os.path.exists(run)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path):
    run = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="boom"), open_run(run, Config(), plan_of(Config()), CLASSES, "x", {}):
        assert os.path.exists(os.path.join(run, rundir.CONFIG))
        raise RuntimeError("boom")
    assert not os.path.exists(run)


def test_a_new_run_refuses_a_directory_that_holds_one(tmp_path):
    run, (net, trainer) = str(tmp_path / "run"), small()
    with open_run(run, Config(), plan_of(Config()), CLASSES, "x", {}) as recorder:
        recorder.epoch_end(net, trainer, [epoch(1, None)])
    with pytest.raises(GluonCifarError, match="already holds a run: continue it with --resume"):
        with open_run(run, Config(), plan_of(Config()), CLASSES, "x", {}):
            pass
    assert os.path.exists(os.path.join(run, checkpoint.LAST))  # untouched


def test_a_new_run_never_overwrites_files_it_did_not_write(tmp_path):
    """A folder holding the user's own config.json and metrics.csv is not a run: refused, untouched."""
    users = tmp_path / "mine"
    users.mkdir()
    (users / "config.json").write_text('{"learning_rate": 0.1}\n')
    (users / "metrics.csv").write_text("step,loss\n1,2.3\n")
    with pytest.raises(GluonCifarError, match=r"is not empty and is not a run directory of gluon_cifar \(it holds "
                                              r"config.json, metrics.csv\): nothing there is overwritten"):
        with open_run(str(users), Config(), plan_of(Config()), CLASSES, "x", {}):
            pass
    assert (users / "config.json").read_text() == '{"learning_rate": 0.1}\n'
    assert sorted(os.listdir(users)) == ["config.json", "metrics.csv"]  # no lock left either
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(GluonCifarError, match=r"\(it holds notes.txt\)"):
        with open_run(str(other), Config(), plan_of(Config()), CLASSES, "x", {}):
            pass
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".draft.tmp").write_text("mine")  # named like a temporary, but not one of ours: kept
    with pytest.raises(GluonCifarError, match=r"\(it holds .draft.tmp\)"):
        with open_run(str(hidden), Config(), plan_of(Config()), CLASSES, "x", {}):
            pass
    assert (hidden / ".draft.tmp").read_text() == "mine"


def test_a_run_killed_before_its_first_checkpoint_is_reused(tmp_path):
    """What a SIGKILL before the first checkpoint leaves (config.json, classes.txt, a lock) is ours."""
    run = str(tmp_path / "run")
    os.makedirs(run)
    rundir.save_start(run, Config(), plan_of(Config()), CLASSES, {})
    open(os.path.join(run, rundir.LOCK), "w").close()
    with open_run(run, Config(epochs=2), plan_of(Config(epochs=2)), CLASSES, "x", {}):
        pass
    assert json.loads(open(os.path.join(run, rundir.CONFIG)).read())["plan"]["epochs"] == 2


def test_the_end_of_run_summary_with_and_without_validation(tmp_path):
    """A run without validation (cpu-fast) ends with its summary too, not in silence."""
    from gluon_cifar.commands.train import summary
    (tmp_path / "model.params").write_text("")
    row = dict(epoch=3, lr=0.1, train_loss=0.5, train_acc=0.81234, examples=10, seconds=1.0, examples_per_sec=10.0)
    validated = summary([EpochResult(valid_acc=0.75, **row)], str(tmp_path))
    assert "valid acc 0.7500 after 3 epochs" in validated and str(tmp_path / "model.params") in validated
    unvalidated = summary([EpochResult(valid_acc=None, **row)], str(tmp_path))
    assert "train acc 0.8123 (no validation: --valid-ratio 0) after 3 epochs" in unvalidated
    for text in (validated, unvalidated):
        assert f"next: python scripts/submit.py --run {tmp_path}" in text
