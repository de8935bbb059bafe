"""Presets: their settings, their checks, and every preset training and submitting end to end."""
import argparse
import json

import numpy as np
import pandas as pd
import pytest

from gluon_cifar.config import Config
from gluon_cifar.errors import ConfigError
from gluon_cifar.flags import add_config_arguments, config_from_args
from gluon_cifar.presets import PRESETS
from tests.conftest import run_script


def parse(*flags):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(flags))


def test_presets_set_their_recipe_and_flags_still_win():
    exercise = config_from_args(parse(), "d2l-exercise")
    assert (exercise.epochs, exercise.lr, exercise.lr_period, exercise.lr_decay) == (100, 0.1, 50, 0.1)
    best = config_from_args(parse("--epochs", "30"), "resnet18-best")
    assert best.epochs == 30 and best.schedule == "cosine" and best.nesterov and best.tta == "flip"
    assert best.augment == "pad-crop-cutout" and best.label_smoothing == 0.1 and best.warmup_epochs == 5
    assert config_from_args(parse(), "d2l") == Config()  # the book's recipe stays the default
    assert set(PRESETS) >= {"d2l", "d2l-exercise", "resnet18-best"}
    fast, sgd = config_from_args(parse(), "cpu-fast"), config_from_args(parse(), "cpu-fast-sgd")
    assert (fast.optimizer, fast.batch_size, fast.muon_lr, fast.lookahead_every, fast.warmup_epochs) == (
        "muon", 2000, 0.24, 0, 0)  # airbench94_muon's
    assert (sgd.optimizer, sgd.batch_size, sgd.lookahead_every, sgd.warmup_epochs, sgd.epochs) == (
        "sgd", 1024, 5, "auto", 10)  # airbench94's
    different = {name for name, value in fast.to_dict().items() if sgd.to_dict()[name] != value}
    assert different == {"optimizer", "batch_size", "lr", "wd", "lookahead_every", "warmup_epochs", "epochs",
                         "batch_pieces"}
    assert (fast.batch_pieces, sgd.batch_pieces) == (4, 1)  # cpu-fast in laptop memory; the old recipe as it was


@pytest.mark.parametrize("settings,message", [
    ({"augment": "pad-crop", "loader": "folder"}, "use it with --loader decoded"),
    ({"schedule": "cosine", "warmup_epochs": 20}, "--warmup-epochs must be"),
    ({"label_smoothing": 1.0}, "--label-smoothing"),
    ({"tta": "rotate"}, "--tta must be one of none, flip, flip-shift"),
    ({"lookahead_every": 5, "checkpoint_every": 12}, "must be a multiple of --lookahead-every"),
    ({"bias_lr_mult": 0.0}, "--bias-lr-mult must be > 0"),
    ({"valid_ratio": 1.0}, "--valid-ratio must be in"),
    ({"whiten_bias_epochs": 3}, "--whiten-bias-epochs is for the fastnets .* --model resnet18 has none"),
    ({"model": "fastnet", "whiten_bias_epochs": -1}, "--whiten-bias-epochs must be >= 0, got -1"),
])
def test_inconsistent_settings_are_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        Config(**settings).validate()


@pytest.mark.slow  # trains every preset
# The recipes run on a smaller GluonCV ResNet: their settings are what is checked here, and the suite must
# stay inside CI's 20 minutes. The book's ResNet-18 itself trains in test_cli's quick-start test (d2l's
# settings with the demo's epochs). d2l-exercise is d2l with other numbers (its settings are checked above,
# in-process): its run would train what d2l's does.
@pytest.mark.parametrize("preset,flags", [
    ("d2l", ["--epochs", "1", "--model", "cifar_resnet20_v1"]),
    ("resnet18-best", ["--epochs", "1", "--warmup-epochs", "0", "--model", "cifar_resnet20_v1"]),  # (cpu-fast warms up)
    ("cpu-fast", ["--epochs", "2", "--batch-size", "128"]),
    ("cpu-fast-sgd", ["--epochs", "2", "--batch-size", "128"]),
])
def test_every_preset_trains_and_submits(tmp_path, preset, flags):
    run = tmp_path / preset
    trained = run_script("train.py", "--demo", "--preset", preset, *flags, "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    record = json.loads((run / "config.json").read_text())
    saved, plan = record["config"], record["plan"]
    overridden = {flag[2:].replace("-", "_") for flag in flags if flag.startswith("--")}
    overridden |= {"time_budget"} if "epochs" in overridden else set()  # an explicit --epochs turns it off
    # saved as asked, and what the run made of "auto" in its plan: flip without a budget; a warm-up of a fifth
    # of 2 epochs, at least 1
    assert {k: saved[k] for k in PRESETS[preset] if k not in overridden} == {
        k: v for k, v in PRESETS[preset].items() if k not in overridden}
    decided = {k for k in ("tta", "warmup_epochs") if PRESETS[preset].get(k) == "auto"}
    assert {k: plan[k] for k in decided} == {k: {"tta": "flip", "warmup_epochs": 1}[k] for k in decided}
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == plan["epochs"] and np.isfinite(metrics["train_loss"]).all()
    if saved["valid_ratio"]:
        assert (metrics["valid_acc"] >= 0).all()
        assert f"valid acc {metrics['valid_acc'].iloc[-1]:.4f} after" in trained.stdout
    else:  # trained on every labelled image: nothing left to validate on
        assert metrics["valid_acc"].isna().all() and json.loads((run / "config.json").read_text())["n_valid"] == 0
        assert f"train acc {metrics['train_acc'].iloc[-1]:.4f} (no validation: --valid-ratio 0) after" in trained.stdout
    assert f"next: python scripts/submit.py --run {run}" in trained.stdout  # the summary, with or without validation
    submitted = run_script("submit.py", "--run", run, "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    assert len(pd.read_csv(run / "submission.csv")) > 0


@pytest.mark.slow
def test_submit_can_choose_its_own_test_time_augmentation(tmp_path):
    run = tmp_path / "run"
    trained = run_script("train.py", "--demo", "--preset", "cpu-fast", "--model", "fastnet_small", "--epochs", "1",
                         "--warmup-epochs", "0", "--batch-size", "128", "--no-tensorboard", "--out", run,
                         "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert not (run / "tensorboard").exists()  # --no-tensorboard (test_events.py reads the events of a run)
    labels = {}
    for tta in ("none", "flip-shift"):
        done = run_script("submit.py", "--run", run, "--tta", tta, "--out", tmp_path / f"{tta}.csv", "--no-progress")
        assert done.returncode == 0, done.stderr
        labels[tta] = pd.read_csv(tmp_path / f"{tta}.csv")["label"]
    assert len(labels["none"]) == len(labels["flip-shift"]) == 200 and (labels["none"] != labels["flip-shift"]).any()
    bad = run_script("submit.py", "--run", run, "--tta", "rotate", "--no-progress")
    assert bad.returncode != 0 and "invalid choice: 'rotate'" in bad.stderr
