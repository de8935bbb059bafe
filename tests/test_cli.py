"""The scripts as users run them: real images end to end, demo data, and clear failures."""
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from gluon_cifar import STARTUP
from tests.conftest import BF16_REFUSED, KAGGLE_LAYOUT, run_in_process, run_script

pytestmark = pytest.mark.slow  # runs the scripts as processes

# A network that trains a demo epoch in seconds, for tests about the scripts rather than about learning
SMALL_MODEL = ["--model", "fastnet_small"]


def test_train_then_submit_on_real_images_over_two_cpu_contexts(real_layout, tmp_path):
    run = tmp_path / "run"
    trained = run_script("train.py", "--data-dir", real_layout, *SMALL_MODEL, "--epochs", "1", "--batch-size", "64",
                         "--cpus", "2", "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["epochs"] == 1 and config["config"]["cpus"] == 2
    assert config["n_train"] + config["n_valid"] == 1000 and config["versions"]["mxnet"] == "1.9.1"
    assert (run / "classes.txt").read_text().split() == sorted(config["classes"])
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 1 and 0 <= metrics["valid_acc"][0] <= 1 and metrics["examples_per_sec"][0] > 0
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG" and (run / "model.params").stat().st_size > 1e6

    submitted = run_script("submit.py", "--run", run, "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    submission = pd.read_csv(run / "submission.csv")
    assert list(submission.columns) == ["id", "label"] and submission["id"].tolist() == list(range(1, 51))
    assert set(submission["label"]) <= set(config["classes"])
    scored = subprocess.run([sys.executable, KAGGLE_LAYOUT, real_layout, "--score", str(run / "submission.csv")],
                            capture_output=True, text=True)
    assert scored.returncode == 0 and "scored 50 images, 0 missing" in scored.stdout


def test_decoded_loader_over_three_contexts_then_bfloat16_prediction_on_real_images(real_layout, tmp_path):
    run = tmp_path / "run"
    trained = run_script("train.py", "--data-dir", real_layout, *SMALL_MODEL, "--epochs", "1", "--batch-size", "50",
                         "--cpus", "3", "--loader", "decoded", "--out", run,
                         "--no-progress")  # 50 over 3 contexts: 17, 17, 16
    assert trained.returncode == 0, trained.stderr
    assert "decoded loader, 18 batches" in trained.stderr  # 900 images, batch 50
    assert json.loads((run / "config.json").read_text())["config"]["loader"] == "decoded"
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["examples"][0] == 900 and 0 < metrics["train_loss"][0] < 10 and 0 <= metrics["valid_acc"][0] <= 1

    full = run_script("submit.py", "--run", run, "--out", tmp_path / "fp32.csv", "--no-progress")
    low = run_script("submit.py", "--run", run, "--out", tmp_path / "bf16.csv", "--dtype", "bfloat16", "--cpus", "2",
                     "--batch-size", "16", "--no-progress")
    assert full.returncode == 0, full.stderr
    if not STARTUP.bf16_kernels:  # an AVX2 CPU: refused before any work, named
        assert low.returncode == 2 and re.search(BF16_REFUSED, low.stderr) and "Traceback" not in low.stderr, low.stderr
        assert not (tmp_path / "bf16.csv").exists()
        return
    assert low.returncode == 0, low.stderr
    fp32, bf16 = pd.read_csv(tmp_path / "fp32.csv"), pd.read_csv(tmp_path / "bf16.csv")
    assert fp32["id"].tolist() == bf16["id"].tolist() == list(range(1, 51))
    assert (fp32["label"] == bf16["label"]).sum() >= 48  # bfloat16 changes a few predictions at most


def demo_answers(run):
    return pd.read_csv(os.path.join(json.loads((run / "config.json").read_text())["data_dir_resolved"], "answers.csv"))


def test_demo_learns_well_above_chance(tmp_path):
    """The quick start: the book's ResNet-18 on the demo data, then its submission."""
    run = tmp_path / "demo"
    trained = run_script("train.py", "--demo", "--epochs", "2", "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["valid_acc"].iloc[-1] > 0.4  # 10 classes: chance is 0.1
    submitted = run_script("submit.py", "--run", run, "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    assert (pd.read_csv(run / "submission.csv")["label"] == demo_answers(run)["label"]).mean() > 0.4


def test_submit_retrains_on_every_labelled_image_and_leaves_the_run_as_it_was(tmp_path):
    run = tmp_path / "demo"
    trained = run_script("train.py", "--demo", *SMALL_MODEL, "--epochs", "2", "--batch-size", "128", "--out", run,
                         "--no-progress")
    assert trained.returncode == 0, trained.stderr
    submitted = run_script("submit.py", "--run", run, "--retrain", "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    retrain = pd.read_csv(run / "retrain" / "metrics.csv")
    assert len(retrain) == 2 and retrain["examples"].iloc[0] == 896  # 1,000 images, batches of 128
    assert (run / "retrain" / "model.params").exists()
    assert pd.read_csv(run / "metrics.csv")["valid_acc"].notna().all()  # the run's own metrics untouched
    assert (pd.read_csv(run / "submission.csv")["label"] == demo_answers(run)["label"]).mean() > 0.2


# The error paths below stop before any training: they run in this process (no MXNet start-up each).
def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    code, err = run_in_process("train.py", "--data-dir", tmp_path / "nope", "--out", tmp_path / "run", capsys=capsys)
    assert code == 2
    assert f"{tmp_path / 'nope'} does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_training_needs_a_data_dir_or_demo_said_outright(tmp_path, capsys):
    code, err = run_in_process("train.py", "--epochs", "1", "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and "give --data-dir DIR" in err and "--demo" in err
    assert not (tmp_path / "run").exists()


def test_gpus_without_gpus_is_a_clear_error(tmp_path, capsys):
    code, err = run_in_process("train.py", "--demo", "--gpus", "0", "--out", tmp_path / "run", capsys=capsys)
    assert code == 2
    assert "GPU 0 is not available" in err and "--cpus" in err


def test_unknown_model_fails_before_writing_anything(tmp_path, capsys):
    code, err = run_in_process("train.py", "--demo", "--model", "resnet1000", "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and "unknown model 'resnet1000'" in err
    assert "cifar_resnet56_v1" in err and not (tmp_path / "run").exists()


def test_bad_setting_is_a_clear_error(tmp_path, capsys):
    code, err = run_in_process("train.py", "--demo", "--valid-ratio", "1.5", "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and "--valid-ratio must be in [0, 1), got 1.5" in err


def test_submit_from_a_directory_that_is_not_a_run(tmp_path, capsys):
    code, err = run_in_process("submit.py", "--run", tmp_path, capsys=capsys)
    assert code == 2 and "config.json does not exist" in err


def test_submit_to_an_unwritable_place_fails_before_predicting(half_trained_run, tmp_path, capsys):
    code, err = run_in_process("submit.py", "--run", half_trained_run, "--out", tmp_path / "missing" / "submission.csv",
                               capsys=capsys)
    assert code == 2 and "missing does not exist; create it (mkdir -p" in err
    assert "predict" not in err  # no progress bar: it stopped before the 300k-image work


def test_the_console_command_runs_each_command():
    installed = os.path.join(os.path.dirname(sys.executable), "gluon-cifar")
    runners = [[sys.executable, "-m", "gluon_cifar"]] + ([[installed]] if os.path.exists(installed) else [])
    for runner in runners:
        listing = subprocess.run(runner + ["--help"], capture_output=True, text=True)
        assert listing.returncode == 0 and all(c in listing.stdout for c in ("train", "submit", "export", "launch"))
        helped = subprocess.run(runner + ["submit", "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and "usage: gluon-cifar submit" in helped.stdout
        assert "--precision {auto,float32,bfloat16}" in helped.stdout
        wrong = subprocess.run(runner + ["fit"], capture_output=True, text=True)
        assert wrong.returncode == 2 and "commands:" in wrong.stderr
        bad = subprocess.run(runner + ["train", "--demo", "--lr", "nan", "--epochs", "1"], capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.strip() == "error: --lr must be a finite number, got nan"
