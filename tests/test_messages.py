"""Messages that send the user the right way (issue 45, item 7): each case seen from outside, with the
message it gave then, asserted here as it reads now."""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import gluon_cifar
from gluon_cifar.runs import rundir
from tests.conftest import ROOT, run_in_process, run_script


@pytest.fixture
def run_copy(half_trained_run, tmp_path):
    """A finished one-epoch run of our own to change (the shared one is read-only)."""
    copy = tmp_path / "run"
    shutil.copytree(half_trained_run, copy)
    return copy


def a_test_image(run) -> str:
    return os.path.join(rundir.info(str(run))["data_dir_resolved"], "test", "1.png")


def test_predict_without_the_trained_weights_names_no_flag_it_lacks(run_copy, capsys):
    """predict has no --retrain: it suggested one all the same."""
    os.remove(run_copy / "model.params")
    code, err = run_in_process("predict.py", run_copy, a_test_image(run_copy), capsys=capsys)
    assert code == 2 and "it was deleted or moved: put it back" in err and "--retrain" not in err, err
    code, err = run_in_process("submit.py", "--run", run_copy, "--out", run_copy / "s.csv", capsys=capsys)
    assert code == 2 and "or pass --retrain to train again on every labelled image" in err, err


def test_predicting_with_a_run_still_training_says_whose_weights_it_uses(run_copy, caplog):
    """A run still training has the weights of its last finished epoch: used without a word before."""
    with rundir.locked(str(run_copy)), caplog.at_level(logging.WARNING):  # as its training process holds it
        table = gluon_cifar.predict(str(run_copy), a_test_image(run_copy), precision="float32")
    assert len(table) == 1 and f"{run_copy} is still training: these are the weights of its last finished " \
                               "epoch (epoch 1)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        gluon_cifar.predict(str(run_copy), a_test_image(run_copy), precision="float32")
    assert "still training" not in caplog.text  # (its lock released: finished)


def test_an_mxnet_export_to_a_folder_goes_inside_it(run_copy, tmp_path, capsys):
    """`--out DIR` wrote DIR-symbol.json beside the folder (and `DIR/` a file named `-symbol.json`)."""
    for given in (tmp_path / "exported", f"{tmp_path / 'other'}{os.sep}"):
        os.makedirs(given, exist_ok=True)
        code, err = run_in_process("export.py", run_copy, "--format", "mxnet", "--out", given, "--check-images", "2",
                                   capsys=capsys)
        assert code == 0, err
        assert sorted(os.listdir(given)) == ["model-0000.params", "model-symbol.json", "model.check.json"]
    assert not any(name.endswith("-symbol.json") for name in os.listdir(tmp_path))


def test_resume_without_config_json_takes_the_settings_the_checkpoint_holds(run_copy):
    """config.json deleted: --resume said "point to a run directory" although checkpoint-last.zip holds the
    settings and the plan; it resumes from them now, and writes config.json again."""
    demo_cache = os.path.dirname(rundir.info(str(run_copy))["data_dir_resolved"])  # the demo data it trained on
    os.remove(run_copy / "config.json")
    resumed = run_script("train.py", "--resume", run_copy, "--epochs", "2", "--no-progress",
                         env={"GLUON_CIFAR_CACHE": demo_cache})
    assert resumed.returncode == 0, resumed.stderr
    assert "config.json is missing: resuming with the settings and plan" in resumed.stderr
    assert pd.read_csv(run_copy / "metrics.csv")["epoch"].tolist() == [1, 2]
    asked, plan = rundir.saved_run(str(run_copy / "config.json"))
    assert plan.length.epochs == 2 and asked.model == "fastnet_small"


def test_ctrl_c_while_the_libraries_load_is_one_line_not_a_traceback(tmp_path):
    """MXNet and GluonCV take seconds to import; a Ctrl-C then printed a 40-line traceback."""
    started = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--demo", "--out",
                                str(tmp_path / "run")], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "GLUON_CIFAR_CACHE": str(tmp_path / "cache")})
    # Ctrl-C once MXNet's library is mapped: inside `import mxnet`, whose Python modules take a second or more
    # after it, however slow or busy the host (a fixed delay could land before Python's own start-up ends)
    deadline = time.monotonic() + 120
    while not loaded(started.pid, "libmxnet") and started.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    started.send_signal(signal.SIGINT)
    _, err = started.communicate(timeout=120)
    assert started.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_run_whose_download_moved_names_the_download_not_a_folder_inside_it(run_copy, tmp_path, capsys):
    """The zip moved after training: submit said `cifar-10.zip/test` was a missing folder."""
    moved = str(tmp_path / "gone" / "cifar-10.zip")
    saved = json.loads((run_copy / "config.json").read_text())
    saved["config"]["data_dir"] = moved  # as a run trained from the zip before it moved records it
    (run_copy / "config.json").write_text(json.dumps(saved))
    code, err = run_in_process("submit.py", "--run", run_copy, "--out", tmp_path / "s.csv", capsys=capsys)
    assert code == 2 and f"the data {moved} does not exist (moved or deleted?): give --data-dir" in err, err
    assert f"{moved}/test" not in err


def loaded(pid: int, library: str) -> bool:
    """Whether process `pid` has mapped a shared library whose name holds `library`."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
            return library in maps.read()
    except OSError:
        return False
